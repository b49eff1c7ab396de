"""The app a test's ``socflow serve --app tests.core.scripted_serve:create`` serves: the production
``create_app`` over the production composition, with a ScriptedModel instead of a real model.

``SOCFLOW_TEST_BLOCK_FILE``: while that file exists, ``assess_case`` blocks (the test kills the server there).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from socflow.api import create_app
from socflow.model.recorder import ModelCallRecorder
from socflow.model.scripted import ScriptedModel, ScriptRule
from socflow.settings import get_settings
from socflow.wiring import build_services
from tests.workers.scripted_worker import blocked
from tests.workflows.triage_helpers import scripted_rules


def create() -> FastAPI:
    rules: list[ScriptRule] = scripted_rules()
    block = os.environ.get("SOCFLOW_TEST_BLOCK_FILE")
    if block and Path(block).exists():
        rules.insert(0, ScriptRule(blocked(Path(block)), node="assess_case", method="generate_structured"))

    def model(recorder: ModelCallRecorder) -> ScriptedModel:
        return ScriptedModel(rules, recorder=recorder)

    return create_app(services=build_services(get_settings(), model=model))
