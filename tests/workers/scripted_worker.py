"""The services of a test worker: the production composition with a ScriptedModel instead of a real model.

``socflow worker --services tests.workers.scripted_worker:build_services -Q workflows``. Settings come
from the environment the test gives the process (``SOCFLOW_DATABASE__URL``, ``SOCFLOW_BROKER__URL``, ...).
``SOCFLOW_TEST_BLOCK_FILE``: while that file exists, ``assess_case`` blocks (the test kills the worker
there). Nothing here ships: production workers build ``socflow.wiring.build_services``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from socflow.model.recorder import ModelCallRecorder
from socflow.model.scripted import ScriptedModel, ScriptRule
from socflow.services import Services
from socflow.settings import Settings
from socflow.wiring import build_services as build_production
from tests.workflows.triage_helpers import scripted_rules

BLOCK_SECONDS = 240


def blocked(block: Path) -> Any:
    def reply(messages: Any, method: str, schema: Any) -> Any:
        deadline = time.monotonic() + BLOCK_SECONDS
        while block.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        raise SystemExit("the test should have killed this worker")

    return reply


def build_services(settings: Settings, **options: Any) -> Services:
    rules: list[ScriptRule] = scripted_rules()
    block = os.environ.get("SOCFLOW_TEST_BLOCK_FILE")
    if block:
        rules.insert(0, ScriptRule(blocked(Path(block)), node="assess_case", method="generate_structured"))

    def model(recorder: ModelCallRecorder) -> ScriptedModel:
        return ScriptedModel(rules, recorder=recorder)

    return build_production(settings, model=model, **options)
