import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["socflow", "tools", "workers", "workflows"])
def test_top_level_package_imports_from_checkout(name: str) -> None:
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve().is_relative_to(REPO), module.__file__


def test_cli_and_core_do_not_import_torch() -> None:
    code = (
        "import sys, socflow.cli, socflow.ingest, socflow.store, socflow.settings, socflow.model;"
        "bad=[m for m in ('torch','transformers') if m in sys.modules]; print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == ""
