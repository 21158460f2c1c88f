"""``/livez`` and ``/readyz``: liveness, dependency checks run concurrently, and graceful drain."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, jsonify

log = logging.getLogger(__name__)

Check = Callable[[], Any]


@dataclass(frozen=True)
class _Registered:
    name: str
    check: Check
    timeout: float
    critical: bool


class DrainFlag:
    """Whether this process is shutting down; gunicorn's master flips a shared one for all workers.

    ``shared`` is any object with a ``.value`` (a ``multiprocessing.Value`` made before fork), so
    the master's SIGTERM is seen by every worker at once.
    """

    def __init__(self, shared: Any = None) -> None:
        self._shared = shared
        self._local = False

    def share_across_fork(self) -> None:
        """Back the flag with shared memory; call in the parent before workers fork."""
        import multiprocessing

        self._shared = multiprocessing.Value("b", 0, lock=False)

    def set(self) -> None:
        self._local = True
        if self._shared is not None:
            self._shared.value = 1

    def is_set(self) -> bool:
        return self._local or bool(self._shared is not None and self._shared.value)


drain = DrainFlag()


class Health:
    """Flask extension; a service registers its checks with ``add_check``.

    A check is a callable that returns (anything) when the dependency is usable and raises when
    not. A non-critical check that fails makes the service ``degraded``: still ready, because it
    can serve (slower, say, without its cache), but visible in the answer.
    """

    def __init__(self, app: Flask | None = None, *, drain_flag: DrainFlag | None = None) -> None:
        self._checks: list[_Registered] = []
        self.drain = drain_flag or drain
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="readyz")
        self._lock = threading.Lock()
        if app is not None:
            self.init_app(app)

    @classmethod
    def of(cls, app: Flask) -> Health:
        """The app's ``Health``, to register a readiness check on; installed on first use, so a
        piece (the cache, the database) can add its check whether or not the app was composed
        by ``create_app``."""
        found = app.extensions.get("flotilla.health")
        if isinstance(found, cls):
            return found
        return cls(app)

    def init_app(self, app: Flask) -> None:
        app.extensions["flotilla.health"] = self
        app.add_url_rule("/livez", "flotilla_livez", self.livez, methods=["GET"])
        app.add_url_rule("/readyz", "flotilla_readyz", self.readyz, methods=["GET"])

    def add_check(self, name: str, check: Check, *, timeout: float = 2.0, critical: bool = True) -> None:
        with self._lock:
            self._checks = [c for c in self._checks if c.name != name]
            self._checks.append(_Registered(name, check, timeout, critical))

    def livez(self) -> Response:
        return jsonify(status="ok")

    def readyz(self) -> tuple[Response, int]:
        if self.drain.is_set():
            return jsonify(status="draining", checks={}), 503
        results = self.run_checks()
        failed = any(r["state"] != "ok" and r["critical"] for r in results.values())
        degraded = any(r["state"] != "ok" for r in results.values())
        status = "failed" if failed else "degraded" if degraded else "ok"
        return jsonify(status=status, checks=results), 503 if failed else 200

    def run_checks(self) -> dict[str, dict[str, Any]]:
        """Run every check at once, each bounded by its own timeout, so one hung dependency can't
        make the probe itself time out."""
        checks = list(self._checks)
        started = {c.name: time.perf_counter() for c in checks}
        futures = {c.name: self._pool.submit(_timed, c.check) for c in checks}
        results: dict[str, dict[str, Any]] = {}
        for c in checks:
            entry: dict[str, Any] = {"critical": c.critical}
            remaining = max(0.0, c.timeout - (time.perf_counter() - started[c.name]))
            try:
                elapsed = futures[c.name].result(timeout=remaining)
                entry |= {"state": "ok", "latency_ms": round(elapsed * 1000, 2)}
            except concurrent.futures.TimeoutError:
                entry |= {"state": "timeout", "latency_ms": round(c.timeout * 1000, 2)}
            except Exception as err:
                entry |= {
                    "state": "failed" if c.critical else "degraded",
                    "latency_ms": round((time.perf_counter() - started[c.name]) * 1000, 2),
                    "error": type(err).__name__,
                }
                log.warning("readiness check %s failed: %s", c.name, err)
            results[c.name] = entry
        return results


def _timed(check: Check) -> float:
    t0 = time.perf_counter()
    check()
    return time.perf_counter() - t0
