"""A Celery worker app for the tests: the real app and tasks, with a ScriptedModel instead of a real model.

``python -m workers --app tests.workers.scripted_worker:app -Q workflows``. Settings come from the
environment the test gives the process (``SOCFLOW_DATABASE__URL``, ``SOCFLOW_BROKER__URL``, ...).
``SOCFLOW_TEST_BLOCK_FILE``: while that file exists, ``assess_case`` blocks (the test kills the worker
there). Nothing here ships: production workers use ``workers.app``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from socflow.db import make_engine, session_factory
from socflow.model.recorder import ModelCallRecorder
from socflow.model.scripted import ScriptedModel, ScriptRule
from socflow.runner import Runner
from socflow.settings import Settings, get_settings
from socflow.wiring import build_deps, build_runner
from tests.workflows.triage_helpers import scripted_rules
from workers.celery_app import make_app

BLOCK_SECONDS = 240


def _blocked(block: Path) -> Any:
    def reply(messages: Any, method: str, schema: Any) -> Any:
        deadline = time.monotonic() + BLOCK_SECONDS
        while block.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        raise SystemExit("the test should have killed this worker")

    return reply


def scripted_runner(settings: Settings) -> Runner:
    factory = session_factory(make_engine(settings.database.url))
    rules: list[ScriptRule] = scripted_rules()
    block = os.environ.get("SOCFLOW_TEST_BLOCK_FILE")
    if block:
        rules.insert(0, ScriptRule(_blocked(Path(block)), node="assess_case", method="generate_structured"))
    model = ScriptedModel(rules, recorder=ModelCallRecorder(factory))
    return build_runner(settings, deps=build_deps(settings, factory=factory, model=model))


app = make_app(get_settings(), runner_factory=scripted_runner)
