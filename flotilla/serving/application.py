"""gunicorn, run in-process with the shared config and a master that drains before it stops."""

from __future__ import annotations

import importlib
import time
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from flotilla.health import drain
from flotilla.service import Service


class DrainingArbiter(Arbiter):  # type: ignore[misc]
    """On SIGTERM, first report not-ready for ``drain_seconds`` while still serving, then stop.

    Load balancers and kubelet see ``/readyz`` turn 503 and stop sending traffic before gunicorn
    closes its listeners; in-flight requests then get the graceful timeout to finish. A second
    SIGTERM skips the rest of the drain.
    """

    drain_seconds = 0.0
    _drain_until: float | None = None

    def handle_term(self) -> None:
        if self.drain_seconds <= 0 or self._drain_until is not None:
            raise StopIteration
        drain.set()
        self._drain_until = time.monotonic() + self.drain_seconds
        self.log.info("SIGTERM: draining for %.1fs before stopping", self.drain_seconds)

    def maybe_promote_master(self) -> None:
        # Called once per pass of the master loop (at least every second): the one place to end
        # the drain without sleeping in a signal handler.
        super().maybe_promote_master()
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            raise StopIteration


class FlotillaApplication(BaseApplication):  # type: ignore[misc]
    """Serves one service; settings are loaded by the caller before this runs (fail fast, exit 2)."""

    def __init__(
        self, service: Service, settings: Any, drain_seconds: float, overrides: dict[str, Any] | None = None
    ) -> None:
        self.service = service
        self.settings = settings
        self.drain_seconds = drain_seconds
        self.overrides = overrides or {}
        super().__init__()

    def load_config(self) -> None:
        module = importlib.import_module("flotilla.serving.gunicorn_config")
        for key, value in vars(module).items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)
        for key, value in self.overrides.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.service.create_app(self.settings)

    def run(self) -> None:
        # Made before fork: the master flips it, every worker's /readyz reads it.
        drain.share_across_fork()
        arbiter = DrainingArbiter(self)
        arbiter.drain_seconds = self.drain_seconds
        arbiter.run()
