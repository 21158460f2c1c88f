"""Request ids and JSON access lines: one line per request with method, route, status and timing."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from flask import Flask, Response, g, request

from flotilla.context import REQUEST_ID_HEADER, accept_request_id, request_id_var

access_log = logging.getLogger("flotilla.access")

QUIET_PATHS = frozenset({"/livez", "/readyz", "/metrics"})


class RequestLog:
    """Flask extension: keeps or mints ``X-Request-Id``, echoes it, and writes the access line.

    Probe and scrape paths are not logged by default: kubelet and Prometheus would otherwise
    write most of the log. Headers are never logged, so credentials can't leak through here.
    """

    def __init__(self, app: Flask | None = None, *, quiet: Iterable[str] = QUIET_PATHS, enabled: bool = True):
        self.quiet = frozenset(quiet)
        self.enabled = enabled
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions["flotilla.requestlog"] = self
        app.before_request(self._start)
        app.after_request(self._finish)
        app.teardown_request(self._teardown)

    def _start(self) -> None:
        g._flotilla_t0 = time.perf_counter()
        request_id = accept_request_id(request.environ.get("HTTP_X_REQUEST_ID"))
        g._flotilla_request_id_token = request_id_var.set(request_id)

    def _finish(self, response: Response) -> Response:
        request_id = request_id_var.get()
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        if self.enabled and request.path not in self.quiet:
            route = request.url_rule.rule if request.url_rule else None
            duration_ms = (time.perf_counter() - g.get("_flotilla_t0", time.perf_counter())) * 1000
            access_log.info(
                "%s %s %s",
                request.method,
                route or request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": round(duration_ms, 3),
                    "bytes": response.calculate_content_length() or 0,
                },
            )
        return response

    def _teardown(self, exc: BaseException | None) -> None:
        token = g.pop("_flotilla_request_id_token", None)
        if token is not None:
            request_id_var.reset(token)
