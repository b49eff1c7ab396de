"""SIEM lookup: entity + time-window search and Sigma hunting over an embedded SQLite store or a remote
Elasticsearch/OpenSearch or Splunk; Sigma detection to generic alerts; loaders for EVTX and JSON logs.

Public API::

    from tools.siem import EntityQuery, SiemEvent, build_siem
    siem = build_siem(settings.siem)
    events = siem.search(EntityQuery(host="WS1", since=t0, until=t1, limit=50))
    rows = [event.to_evidence(case_id) for event in events]
"""

from tools.siem.backend import SiemBackend, build_siem
from tools.siem.detect import GenericAlert, detect
from tools.siem.embedded import EmbeddedSiem
from tools.siem.models import BackendKind, EntityQuery, LoadReport, SiemEvent
from tools.siem.remote import ElasticSiem, SplunkSiem, sigma_to_lucene, sigma_to_spl
from tools.siem.sigma_rules import UnknownSigmaFieldError, compile_rule, parse_rule

__all__ = [
    "BackendKind",
    "ElasticSiem",
    "EmbeddedSiem",
    "EntityQuery",
    "GenericAlert",
    "LoadReport",
    "SiemBackend",
    "SiemEvent",
    "SplunkSiem",
    "UnknownSigmaFieldError",
    "build_siem",
    "compile_rule",
    "detect",
    "parse_rule",
    "sigma_to_lucene",
    "sigma_to_spl",
]
