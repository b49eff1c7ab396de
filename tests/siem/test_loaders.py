"""Loading real logs and bad input: clear reasons naming file/line/record; the rest of the load goes on."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

from tools.siem.embedded import EmbeddedSiem
from tools.siem.loaders import parse_json_text


def _sample(regression_dir: Path, name: str) -> Path:
    (path,) = regression_dir.rglob(f"{name}/*.evtx")
    return path


def test_load_regression_set_counts_and_is_idempotent(regression_dir: Path, tmp_path: Path) -> None:
    with EmbeddedSiem(tmp_path / "siem.db") as siem:
        first = siem.load([regression_dir])
        assert first.loaded > 200
        # .evtx and .json of a sample are the same events: stored once.
        assert first.duplicates > 200
        reasons = {item.reason for item in first.skipped}
        assert "not a log file" in reasons  # info.yml
        assert any(r.startswith("unsupported file type .raw") for r in reasons)
        again = siem.load([regression_dir])
        assert again.loaded == 0
        assert again.duplicates == first.loaded + first.duplicates
        assert siem.count() == first.loaded


def test_malformed_evtx_is_reported_and_other_files_still_load(regression_dir: Path, tmp_path: Path) -> None:
    good = _sample(regression_dir, "proc_creation_win_findstr_recon_everyone")
    shutil.copy(good, tmp_path / "good.evtx")
    (tmp_path / "broken.evtx").write_bytes(b"ElfFile\x00" + b"\x13" * 5000)
    (tmp_path / "truncated.evtx").write_bytes(good.read_bytes()[:4096])
    with EmbeddedSiem(":memory:") as siem:
        report = siem.load([tmp_path])
    assert report.loaded == 3
    by_file = {Path(item.source.split(" record ")[0]).name: item.reason for item in report.skipped}
    assert "broken.evtx" in by_file and "EVTX" in by_file["broken.evtx"]
    assert "truncated.evtx" in by_file


def test_truncated_json_line_names_file_and_line(tmp_path: Path) -> None:
    lines = [json.dumps({"EventID": 1, "Hostname": f"h{i}", "Image": "C:\\x.exe"}) for i in range(5)]
    lines[2] = lines[2][:25]  # truncated mid-object
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(lines) + "\n")
    with EmbeddedSiem(":memory:") as siem:
        report = siem.load([path])
    assert report.loaded == 4
    assert [item.source for item in report.skipped] == [f"{path}:3"]
    assert "truncated" in report.skipped[0].reason


def test_concatenated_pretty_json_and_arrays() -> None:
    text = '{\n  "EventID": 1\n}\n{\n  "EventID": 2\n}\n[{"EventID": 3}, 4]\n'
    parsed = list(parse_json_text(text, "x.json"))
    assert [p.event["EventID"] for p in parsed if p.event] == [1, 2, 3]
    assert [p.source for p in parsed if p.event is None] == ["x.json:7"]


def test_otrf_zip_archives_load(logs_dir: Path, tmp_path: Path) -> None:
    (archive,) = logs_dir.rglob("empire_shell_net_local_users.zip")
    bad_zip = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad_zip, "w") as handle:
        handle.writestr("events.json", '{"EventID": 1, "Hostname": "a"}\n{"EventID": ')
        handle.writestr("notes.bin", b"\x00")
    with EmbeddedSiem(":memory:") as siem:
        report = siem.load([archive, bad_zip])
        assert report.loaded > 1000
        sources = [item.source for item in report.skipped]
        assert f"{bad_zip}!events.json:2" in sources
        assert f"{bad_zip}!notes.bin" in sources
        hosts = {e.host for e in siem.iter_all() if e.host}
        assert hosts  # NXLog "Hostname" became host.name
