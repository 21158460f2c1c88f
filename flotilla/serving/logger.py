"""gunicorn's logger, made to speak the chassis' JSON and to skip its own access log."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from gunicorn.glogging import Logger

from flotilla.logs import JsonFormatter


class GunicornLogger(Logger):  # type: ignore[misc]
    """Error log as JSON lines on stdout; no access log (the app writes a richer one).

    Turning ``access`` into a no-op also saves the cost of formatting gunicorn's access atoms on
    every request, which it would otherwise do whenever any logging config is present.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter(os.environ.get("FLOTILLA_SERVICE") or _service(cfg)))
        self.error_log.handlers = [handler]
        self.error_log.propagate = False
        self.access_log.handlers = []
        self.access_log.propagate = False

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


def _service(cfg: Any) -> str:
    name = str(cfg.proc_name or "app")
    return name.removeprefix("flotilla-")
