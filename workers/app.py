"""The Celery app of the process settings: ``celery -A workers.app worker`` (``socflow worker`` runs it)."""

from __future__ import annotations

from socflow.settings import get_settings
from workers.celery_app import make_app

app = make_app(get_settings())
