"""Schemathesis fuzzes the OpenAPI schema: no request may produce a 5xx, and every answer's status code
and content type are ones the schema documents.

In ``make test`` the examples are bounded and derandomized (a fixed seed); ``make fuzz`` sets
``SOCFLOW_FUZZ_RANDOM=1`` for random, larger runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from socflow.api import create_app
from socflow.auth import Role
from socflow.dispatch import NullDispatcher
from socflow.settings import Settings
from tests.api.conftest import make_token

RANDOM = os.environ.get("SOCFLOW_FUZZ_RANDOM") == "1"
EXAMPLES = int(os.environ.get("SOCFLOW_FUZZ_EXAMPLES", "200" if RANDOM else "12"))
AUTH: dict[str, str] = {}

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from socflow import migrate

    root = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{root / 'fuzz.db'}"
    migrate.upgrade(url)
    settings_ = Settings(
        database={"url": url}, siem={"path": root / "siem.db"}, model={"backend": "scripted"}
    )
    AUTH["Authorization"] = f"Bearer {make_token(url, Role.admin)}"
    app = create_app(settings_, dispatcher=NullDispatcher())
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_server_errors(api_schema) -> None:  # type: ignore[no-untyped-def]
    """Every operation, EXAMPLES generated requests each, as an admin (the deepest code paths)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 14
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            derandomize=not RANDOM,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case) -> None:  # type: ignore[no-untyped-def]
            case.call_and_validate(
                headers=AUTH,
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ],
            )

        run()


def test_fuzz_data_stays_in_tmp(tmp_path: Path) -> None:
    assert not (Path(__file__).resolve().parents[2] / "fuzz.db").exists()
