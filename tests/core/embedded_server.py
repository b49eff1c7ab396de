"""``socflow serve`` as a real subprocess on SQLite with no broker, for the embedded-server tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import REPO_ROOT

# The CLI as `socflow serve` runs it: serve configures logging itself (SOCFLOW_LOG__LEVEL, INFO by default).
LAUNCH = "import sys; from socflow.cli import app; app(sys.argv[1:])"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServeProcess:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed or released."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def start_serve(env: dict[str, str], log: Path, *args: str, timeout: float = 90.0) -> ServeProcess:
    """``socflow serve --port P [args]`` with ``env`` added to this environment; waits for /healthz."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    handle = log.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = ServeProcess(proc, base, log)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"socflow serve exited with {proc.returncode}:\n{server.output()[-4000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise AssertionError(f"socflow serve did not answer in {timeout:g}s:\n{server.output()[-4000:]}")
        time.sleep(0.2)
