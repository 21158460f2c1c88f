"""The two comparison apps for the chassis benchmark (the third is the sample service itself).

``bare``: Flask alone. ``stock``: what most teams run — the stock OpenTelemetry Flask
instrumentation (100% sampling, batch export to the same kind of local file sink) plus a
prometheus_client counter and histogram in multiprocess mode.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, Response, g, request


def bare() -> Flask:
    app = Flask("bare")

    @app.get("/ping")
    def ping() -> dict[str, bool]:
        return {"ok": True}

    return app


def stock() -> Flask:
    from opentelemetry import trace
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Histogram,
        generate_latest,
        multiprocess,
    )

    from flotilla.tracing.exporter import JsonLinesSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": "stock"}))
    provider.add_span_processor(
        BatchSpanProcessor(
            JsonLinesSpanExporter(os.environ.get("BENCH_TRACE_FILE", "/tmp/bench-stock.jsonl"))
        )
    )
    trace.set_tracer_provider(provider)
    requests_total = Counter("http_requests_total", "requests", ["method", "endpoint", "status"])
    latency = Histogram("http_request_duration_seconds", "latency", ["method", "endpoint"])

    app = bare()

    @app.before_request
    def start() -> None:
        g.t0 = time.perf_counter()

    @app.after_request
    def record(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "none"
        requests_total.labels(request.method, endpoint, str(response.status_code)).inc()
        latency.labels(request.method, endpoint).observe(time.perf_counter() - g.t0)
        return response

    @app.get("/metrics")
    def metrics() -> Any:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    FlaskInstrumentor().instrument_app(app)
    return app
