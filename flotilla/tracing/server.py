"""Server spans for Flask apps: a lean replacement for the stock Flask instrumentation.

The stock instrumentation wraps WSGI and Flask and records dozens of attributes; this WSGI
middleware records the HTTP semantic-convention attributes a trace view needs, for a fraction of
the CPU. The span itself is an ordinary SDK span from ``tracer.start_span`` on the configured
provider, so its sampler, span limits and span processors (``on_start`` and ``on_end``) apply as
the SDK documents. It starts before routing, named by method, and is renamed to ``METHOD /route``
once Flask has matched the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from flotilla.tracing.provider import TracingConfig, init_tracing, set_propagators
from flotilla.wsgi import ROUTE_KEY, Captured, WSGIApp, record_route, wrap

UNTRACED_PATHS = frozenset({"/livez", "/readyz", "/metrics"})
INSTRUMENTATION = "flotilla.http.server"


class _EnvironGetter(Getter[dict[str, Any]]):
    """Reads propagation headers straight from the WSGI environ, no header object built."""

    def get(self, carrier: dict[str, Any], key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return [value] if value is not None else None

    def keys(self, carrier: dict[str, Any]) -> list[str]:
        return [k[5:].replace("_", "-").lower() for k in carrier if k.startswith("HTTP_")]


_getter = _EnvironGetter()


class Tracing:
    """Flask extension: one SERVER span per request, parented on incoming W3C or X-Ray context.

    Spans come from this process's provider (``init_tracing``), unless ``tracer_provider`` is
    given: then that provider makes them (tests use it for their own sampler, limits and
    processors) and only the chassis' propagators are installed.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        config: TracingConfig | None = None,
        untraced: Iterable[str] = UNTRACED_PATHS,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.config = config
        self.untraced = frozenset(untraced)
        self.tracer_provider = tracer_provider
        self.tracer: trace.Tracer | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        provider = self.tracer_provider
        if provider is None:
            provider = init_tracing(self.config or TracingConfig(service=app.name))
        else:
            # An X-Ray header without Sampled is decided by the sampler of the provider in use.
            set_propagators(getattr(provider, "sampler", None))
        self.tracer = provider.get_tracer(INSTRUMENTATION)
        app.extensions["flotilla.tracing"] = self
        record_route(app)
        wrap(app, self._middleware)

    def _middleware(self, wsgi_app: WSGIApp) -> WSGIApp:
        tracer, untraced = self.tracer, self.untraced
        assert tracer is not None
        start_span = tracer.start_span
        # The environ keys the propagators read; a request carrying none of them (most direct
        # calls, every probe) starts a root span without running the propagators at all.
        carried = tuple("HTTP_" + f.upper().replace("-", "_") for f in propagate.get_global_textmap().fields)
        empty = Context()
        server = SpanKind.SERVER
        error = Status(StatusCode.ERROR)

        def handle(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path in untraced:
                return wsgi_app(environ, start_response)
            method = environ.get("REQUEST_METHOD", "")
            if any(key in environ for key in carried):
                parent = propagate.extract(environ, getter=_getter)
            else:
                parent = empty
            # Attributes go in at the start, so the sampler sees them and span limits apply.
            span = start_span(
                method,
                parent,
                server,
                {
                    "http.request.method": method,
                    "url.path": path,
                    "url.scheme": environ.get("wsgi.url_scheme", "http"),
                },
            )
            token = context.attach(trace.set_span_in_context(span, parent))
            captured = Captured(start_response)
            try:
                return wsgi_app(environ, captured)
            except Exception as exc:  # Flask answers what a view raises; this is what escaped it
                span.record_exception(exc, escaped=True)
                raise
            finally:
                if span.is_recording():  # an unsampled request ends here: nothing to fill in
                    status = captured.status
                    route = environ.get(ROUTE_KEY)
                    if route:
                        span.update_name(f"{method} {route}")
                        span.set_attributes({"http.route": route, "http.response.status_code": status})
                    else:
                        span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(error)
                    span.end()
                context.detach(token)

        return handle
