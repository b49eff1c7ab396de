"""Pull connectors: Elastic Security alerts, Splunk ES notables, and a drop folder.

Each normalizes what it fetches onto the generic alert format (``socflow.normalize``) and hands it to an
ingest callback (``socflow connector`` wires ``IngestService``); pulled ones keep a cursor in
``connector_cursors``.
"""

from socflow.connectors.base import (
    Connector,
    ConnectorError,
    ConnectorHTTPError,
    HttpConnector,
    IngestFn,
    IngestReportLike,
    PollResult,
    submit,
)
from socflow.connectors.cursors import CursorStore, DbCursorStore, MemoryCursorStore
from socflow.connectors.elastic import DEFAULT_INDEX, ElasticAlertsConnector
from socflow.connectors.folder import FolderWatcher
from socflow.connectors.splunk import SplunkNotablesConnector

__all__ = [
    "DEFAULT_INDEX",
    "Connector",
    "ConnectorError",
    "ConnectorHTTPError",
    "CursorStore",
    "DbCursorStore",
    "ElasticAlertsConnector",
    "FolderWatcher",
    "HttpConnector",
    "IngestFn",
    "IngestReportLike",
    "MemoryCursorStore",
    "PollResult",
    "SplunkNotablesConnector",
    "submit",
]
