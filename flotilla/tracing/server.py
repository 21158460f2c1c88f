"""Server spans for Flask requests: a lean replacement for the stock Flask instrumentation.

The stock instrumentation wraps WSGI and Flask and records dozens of attributes; this records the
stable HTTP semantic-convention attributes a trace view needs, at a fraction of the CPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, g, request
from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from flotilla.tracing.provider import TracingConfig, init_tracing

UNTRACED_PATHS = frozenset({"/livez", "/readyz", "/metrics"})


class _EnvironGetter(Getter[dict[str, Any]]):
    """Reads propagation headers straight from the WSGI environ, no header object built."""

    def get(self, carrier: dict[str, Any], key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return [value] if value is not None else None

    def keys(self, carrier: dict[str, Any]) -> list[str]:
        return [k[5:].replace("_", "-").lower() for k in carrier if k.startswith("HTTP_")]


_getter = _EnvironGetter()


class Tracing:
    """Flask extension: one SERVER span per request, parented on incoming W3C or X-Ray context."""

    def __init__(
        self, app: Flask | None = None, *, config: TracingConfig | None = None,
        untraced: Iterable[str] = UNTRACED_PATHS,
    ) -> None:
        self.config = config
        self.untraced = frozenset(untraced)
        self.tracer: trace.Tracer | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        config = self.config or TracingConfig(service=app.name)
        provider = init_tracing(config)
        self.tracer = provider.get_tracer("flotilla.http.server")
        app.extensions["flotilla.tracing"] = self
        app.before_request(self._start)
        app.after_request(self._status)
        app.teardown_request(self._end)

    def _start(self) -> None:
        if request.path in self.untraced:
            return
        assert self.tracer is not None
        environ = request.environ
        parent = propagate.extract(environ, getter=_getter)
        rule = request.url_rule.rule if request.url_rule else None
        method = request.method
        span = self.tracer.start_span(
            f"{method} {rule}" if rule else method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": request.path,
                "url.scheme": request.scheme,
                "http.route": rule or "",
                "client.address": request.remote_addr or "",
                "user_agent.original": environ.get("HTTP_USER_AGENT", ""),
            },
        )
        g._flotilla_span = span
        g._flotilla_span_token = context.attach(trace.set_span_in_context(span, parent))

    def _status(self, response: Response) -> Response:
        span = g.get("_flotilla_span")
        if span is not None:
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
        return response

    def _end(self, exc: BaseException | None) -> None:
        span = g.pop("_flotilla_span", None)
        if span is None:
            return
        if exc is not None:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        span.end()
        context.detach(g.pop("_flotilla_span_token"))
