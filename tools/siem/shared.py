"""A SIEM backend shared by the threads of one process: each thread gets its own backend, built on its first
call (the embedded store's SQLite connection belongs to the thread that opened it), all closed together."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from sigma.rule import SigmaRule

from tools.siem.backend import SiemBackend
from tools.siem.models import BackendKind, EntityQuery, SiemEvent


class PerThreadSiem:
    """A ``SiemBackend`` that delegates to one backend per thread, made by ``build``."""

    def __init__(self, build: Callable[[], SiemBackend], kind: BackendKind) -> None:
        self._build = build
        self.kind = kind
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[SiemBackend] = []

    def _backend(self) -> SiemBackend:
        backend: SiemBackend | None = getattr(self._local, "backend", None)
        if backend is None:
            backend = self._build()
            self._local.backend = backend
            with self._lock:
                self._all.append(backend)
        return backend

    def search(self, query: EntityQuery) -> list[SiemEvent]:
        return self._backend().search(query)

    def hunt(self, rule: SigmaRule | str, *, limit: int = 100) -> list[SiemEvent]:
        return self._backend().hunt(rule, limit=limit)

    def close(self) -> None:
        with self._lock:
            backends, self._all = self._all, []
        for backend in backends:
            with contextlib.suppress(
                Exception
            ):  # another thread's SQLite connection refuses: it dies with it
                backend.close()
