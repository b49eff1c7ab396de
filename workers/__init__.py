"""Execution on Celery and Redis: the app, queues and routing, thin tasks, the dispatcher, the sweeper.

The broker carries run ids only; the database is the truth (``socflow.runner`` claims a run with a
compare-and-set, so a duplicate or late message is a no-op). Nothing in ``socflow`` imports this package
except ``socflow.wiring``.
"""
