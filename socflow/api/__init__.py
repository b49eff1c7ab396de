"""The REST API (FastAPI, OpenAPI at ``/docs``), versioned under ``/api/v1``."""

from socflow.api.app import create_app

__all__ = ["create_app"]
