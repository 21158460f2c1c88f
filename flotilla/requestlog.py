"""Request ids and JSON access lines: one line per request with method, route, status and timing."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from flotilla.context import REQUEST_ID_HEADER, accept_request_id, request_id_var
from flotilla.wsgi import ROUTE_KEY, Captured, WSGIApp, record_route, wrap

access_log = logging.getLogger("flotilla.access")

QUIET_PATHS = frozenset({"/livez", "/readyz", "/metrics"})


class RequestLog:
    """Flask extension: keeps or mints ``X-Request-Id``, echoes it, and writes the access line.

    Probe and scrape paths are not logged by default: kubelet and Prometheus would otherwise
    write most of the log. Headers are never logged, so credentials can't leak through here.
    """

    def __init__(
        self, app: Flask | None = None, *, quiet: Iterable[str] = QUIET_PATHS, enabled: bool = True
    ) -> None:
        self.quiet = frozenset(quiet)
        self.enabled = enabled
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions["flotilla.requestlog"] = self
        record_route(app)
        wrap(app, self._middleware)

    def _middleware(self, wsgi_app: WSGIApp) -> WSGIApp:
        quiet, enabled, log = self.quiet, self.enabled, access_log

        def handle(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            t0 = time.perf_counter()
            request_id = accept_request_id(environ.get("HTTP_X_REQUEST_ID"))
            token = request_id_var.set(request_id)
            captured = Captured(start_response, (REQUEST_ID_HEADER, request_id))
            try:
                body = wsgi_app(environ, captured)
                path = environ.get("PATH_INFO", "")
                if enabled and path not in quiet and log.isEnabledFor(logging.INFO):
                    method = environ.get("REQUEST_METHOD", "")
                    route = environ.get(ROUTE_KEY)
                    log.info(
                        "%s %s %s",
                        method,
                        route or path,
                        captured.status,
                        extra={
                            "method": method,
                            "route": route,
                            "status": captured.status,
                            "duration_ms": round((time.perf_counter() - t0) * 1000, 3),
                            "bytes": captured.length,
                        },
                    )
                return body
            finally:
                request_id_var.reset(token)

        return handle
