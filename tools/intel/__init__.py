"""Threat intelligence: a local indicator store fed from feed files, an optional MISP provider, and the
evidence provider that turns matches on a case's observables into citable evidence (see docs/intel.md).

- ``tools.intel.indicators``: indicator types, value normalization, the bounds every loader applies.
- ``tools.intel.formats``: STIX 2.1 bundles, MISP event JSON (single events, feeds with a manifest), CSV.
- ``tools.intel.store``: load, list and match indicators in socflow's database (table ``indicators``).
- ``tools.intel.misp``: the MISP REST provider (``/attributes/restSearch``; cached, rate-limited, off by
  default).
- ``tools.intel.evidence``: ``IntelEvidence``, the evidence provider registered by ``socflow.wiring``.
"""

from tools.intel.indicators import IndicatorIn, IndicatorType, guess_type, normalize

__all__ = ["IndicatorIn", "IndicatorType", "guess_type", "normalize"]
