"""Prometheus metrics: HTTP RED metrics per route, in-flight requests, build info, ``/metrics``.

Under gunicorn the registry is multiprocess (``PROMETHEUS_MULTIPROC_DIR`` set before Python
starts, see ``flotilla.serving``), so a scrape sees every worker's counts, not one worker's.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from flotilla.wsgi import ROUTE_KEY, Captured, WSGIApp, record_route, wrap

# The *_created series double what a scrape carries and no dashboard uses them.
disable_created_metrics()

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED_ROUTE = "<unmatched>"


class HttpMetrics:
    """The server-side request metrics, labelled by route template (never the raw path)."""

    def __init__(self, registry: CollectorRegistry | None, service: str, version: str) -> None:
        # registry=None leaves the metrics unregistered: in multiprocess mode the values live in
        # files and the scrape builds its own registry from them.
        self.service = service
        self.requests = Counter(
            "http_server_requests",
            "HTTP requests served, by route template and status.",
            ["service", "method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "http_server_request_duration_seconds",
            "Time from request start to response, by route template.",
            ["service", "method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "http_server_requests_in_flight",
            "Requests being handled now.",
            ["service"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.build_info = Gauge(
            "flotilla_build_info",
            "Always 1; labels say what is running.",
            ["service", "version", "python"],
            multiprocess_mode="max",
            registry=registry,
        )
        self.build_info.labels(service, version, platform.python_version()).set(1)
        self._in_flight = self.in_flight.labels(service)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def started(self) -> None:
        self._in_flight.inc()

    def ended(self) -> None:
        self._in_flight.dec()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one request; label children are cached since ``labels()`` is the costly part."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(self.service, method, route, str(status)),
                self.duration.labels(self.service, method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


class Metrics:
    """Flask extension serving ``/metrics``; ``app.extensions["flotilla.metrics"]`` holds it."""

    def __init__(self, app: Flask | None = None, *, service: str = "", version: str = "0.0.0") -> None:
        self.service = service
        self.version = version
        self.registry: CollectorRegistry | None = None
        self.http: HttpMetrics | None = None
        self.multiprocess = False
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        self.service = self.service or app.name
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # One registry per app keeps tests (many apps in one process) from colliding; in
        # multiprocess mode the values live in files, so the registry is only a namespace.
        self.registry = CollectorRegistry(auto_describe=True)
        self.http = HttpMetrics(None if self.multiprocess else self.registry, self.service, self.version)
        app.extensions["flotilla.metrics"] = self
        app.add_url_rule("/metrics", "flotilla_metrics", self.render, methods=["GET"])
        record_route(app)
        wrap(app, self._middleware)

    def _middleware(self, wsgi_app: WSGIApp) -> WSGIApp:
        http = self.http
        assert http is not None

        def handle(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            t0 = time.perf_counter()
            http.started()
            captured = Captured(start_response)
            try:
                return wsgi_app(environ, captured)
            finally:
                route = environ.get(ROUTE_KEY, UNMATCHED_ROUTE)
                http.observe(
                    environ.get("REQUEST_METHOD", ""), route, captured.status, time.perf_counter() - t0
                )
                http.ended()

        return handle

    def render(self) -> Response:
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            assert self.registry is not None
            registry = self.registry
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
