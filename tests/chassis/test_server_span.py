"""The server span is an ordinary SDK span: processors, span limits and the sampler all apply.

Most tests build a small app from the chassis pieces with ``Tracing(tracer_provider=...)``, so each
can choose its own sampler and limits; the first uses the sample service on the process provider.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from flask import Flask
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, StatusCode, TraceState
from opentelemetry.util.types import Attributes

from flotilla.api import Model, create_api
from flotilla.errors import Problems
from flotilla.tracing import Tracing, add_span_processor
from flotilla.wsgi import WSGIApp, wrap

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


def traceparent(sampled: bool) -> dict[str, str]:
    return {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-{'01' if sampled else '00'}"}


class Recorder(SpanProcessor):
    """What a span processor is shown: each start (as it was then) and each end."""

    def __init__(self) -> None:
        self.started: list[tuple[str, SpanKind, dict[str, Any], Span]] = []
        self.ended: list[ReadableSpan] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.started.append((span.name, span.kind, dict(span.attributes or {}), span))

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


class SkuPath(Model):
    sku: str


class Traced:
    """A chassis app whose server spans come from a provider of the test's own."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.recorder = Recorder()
        self.exporter = InMemorySpanExporter()
        provider.add_span_processor(self.recorder)
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.current: list[trace.SpanContext] = []
        self.app = self._build()

    def _build(self) -> Flask:
        app = create_api("spans")
        Problems(app)

        @app.get("/items/<sku>")
        def item(path: SkuPath) -> dict[str, str]:
            self.current.append(trace.get_current_span().get_span_context())
            return {"sku": path.sku}

        @app.get("/boom")
        def boom() -> None:
            raise RuntimeError("kaput")

        Tracing(app, tracer_provider=self.provider)
        return app

    def get(self, path: str, headers: dict[str, str] | None = None) -> Any:
        return self.app.test_client().get(path, headers=headers or {})

    @property
    def exported(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()


@pytest.fixture
def traced() -> Iterator[Callable[..., Traced]]:
    made: list[Traced] = []

    def make(**provider_args: Any) -> Traced:
        made.append(Traced(TracerProvider(**provider_args)))
        return made[-1]

    yield make
    for one in made:
        one.provider.shutdown()


# 1. span processors


def test_processors_see_the_server_span_start_and_end(client: Any) -> None:
    recorder = Recorder()
    add_span_processor(recorder)  # the process provider the sample service was built on
    client.get("/hello/ann", headers=traceparent(sampled=True))
    started = [s for s in recorder.started if format(s[3].context.trace_id, "032x") == TRACE_ID]
    ((name, kind, attributes, span),) = started
    # Started before routing: named by method, with the request attributes already on it.
    assert (name, kind) == ("GET", SpanKind.SERVER)
    assert attributes == {"http.request.method": "GET", "url.path": "/hello/ann", "url.scheme": "http"}
    (ended,) = [s for s in recorder.ended if s.context == span.context]
    assert ended.name == "GET /hello/<name>"
    assert ended.kind is SpanKind.SERVER
    assert ended.end_time is not None
    assert ended.attributes is not None
    assert ended.attributes["http.response.status_code"] == 200


def test_server_span_is_current_in_the_view(traced: Callable[..., Traced]) -> None:
    t = traced()
    t.get("/items/abc")
    (span,) = t.exported
    assert t.current == [span.context]
    assert [s[3].context for s in t.recorder.started] == [span.context]
    assert [s.context for s in t.recorder.ended] == [span.context]


def test_view_exception_is_recorded_and_marks_the_span(traced: Callable[..., Traced]) -> None:
    t = traced()
    assert t.get("/boom").status_code == 500
    (span,) = t.exported
    assert span.name == "GET /boom"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 500
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "RuntimeError"
    assert event.attributes["exception.message"] == "kaput"


def test_exception_escaping_the_app_is_recorded(traced: Callable[..., Traced]) -> None:
    t = traced()
    app = create_api("broken")

    def broken(inner: WSGIApp) -> WSGIApp:
        def fail(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            raise LookupError("below Flask")

        return fail

    wrap(app, broken)  # under the tracing middleware, where Flask's error handlers can't catch it
    Tracing(app, tracer_provider=t.provider)
    with pytest.raises(LookupError):
        app.test_client().get("/anything")
    (span,) = t.exported
    assert span.status.status_code is StatusCode.ERROR
    (event,) = span.events
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "LookupError"
    assert event.attributes["exception.escaped"] == "True"


# 2. span limits


def test_span_limits_cap_the_attribute_count(traced: Callable[..., Traced]) -> None:
    t = traced(span_limits=SpanLimits(max_attributes=2))
    t.get("/items/abc")
    (span,) = t.exported
    assert span.attributes is not None
    # The newest two survive: the ones set when the response is known.
    assert dict(span.attributes) == {"http.route": "/items/<sku>", "http.response.status_code": 200}
    assert span.dropped_attributes == 3


def test_span_limits_cap_the_attribute_length(traced: Callable[..., Traced]) -> None:
    t = traced(span_limits=SpanLimits(max_attribute_length=6))
    t.get("/items/abcdefgh")
    (span,) = t.exported
    assert span.attributes is not None
    assert span.attributes["url.path"] == "/items"
    assert span.attributes["http.route"] == "/items"
    assert span.attributes["http.request.method"] == "GET"


def test_span_limits_cap_the_events(traced: Callable[..., Traced]) -> None:
    t = traced(span_limits=SpanLimits(max_events=0))
    t.get("/boom")
    (span,) = t.exported
    assert span.events == ()
    assert span.dropped_events == 1


# 3. the sampler


@pytest.mark.parametrize("sampler", [ALWAYS_OFF, TraceIdRatioBased(0)], ids=["always_off", "ratio_0"])
def test_sampler_that_drops_records_nothing(traced: Callable[..., Traced], sampler: Sampler) -> None:
    t = traced(sampler=sampler)
    assert t.get("/items/abc").status_code == 200
    assert t.exported == ()
    assert t.recorder.started == []
    assert t.recorder.ended == []
    # The request still has a (non-recording) span context: logs carry its trace id.
    (current,) = t.current
    assert current.is_valid
    assert not current.trace_flags.sampled


def test_parent_based_follows_a_sampled_traceparent(traced: Callable[..., Traced]) -> None:
    t = traced(sampler=ParentBased(ALWAYS_OFF))  # a new trace would not be sampled
    t.get("/items/abc", headers=traceparent(sampled=True))
    (span,) = t.exported
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == PARENT_ID
    assert span.parent.is_remote
    assert span.context.trace_flags.sampled
    assert t.current == [span.context]


def test_parent_based_follows_an_unsampled_traceparent(traced: Callable[..., Traced]) -> None:
    t = traced(sampler=ParentBased(ALWAYS_ON))  # a new trace would be sampled
    t.get("/items/abc", headers=traceparent(sampled=False))
    assert t.exported == ()
    assert t.recorder.ended == []
    (current,) = t.current
    assert format(current.trace_id, "032x") == TRACE_ID  # the trace still continues downstream


def test_parent_based_follows_an_unsampled_xray_header(traced: Callable[..., Traced]) -> None:
    t = traced(sampler=ParentBased(ALWAYS_ON))
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"
    t.get("/items/abc", headers={"X-Amzn-Trace-Id": header})
    assert t.exported == ()
    (current,) = t.current
    assert format(current.trace_id, "032x") == "5759e988bd862e3fe1be46a994272793"


def test_new_trace_without_headers(traced: Callable[..., Traced]) -> None:
    t = traced(sampler=ParentBased(ALWAYS_ON))
    t.get("/items/abc")
    (span,) = t.exported
    assert span.parent is None
    assert format(span.context.trace_id, "032x") != TRACE_ID


class Asking(Sampler):
    """Records what it is asked; answers RECORD_ONLY (recorded for processors, not exported)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, SpanKind | None, dict[str, Any]]] = []

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        self.asked.append((name, kind, dict(attributes or {})))
        return SamplingResult(Decision.RECORD_ONLY, {**(attributes or {}), "sampler.said": "record"})

    def get_description(self) -> str:
        return "Asking"


def test_sampler_is_asked_with_name_kind_and_attributes(traced: Callable[..., Traced]) -> None:
    sampler = Asking()
    t = traced(sampler=sampler)
    t.get("/items/abc")
    assert sampler.asked == [
        (
            "GET",
            SpanKind.SERVER,
            {"http.request.method": "GET", "url.path": "/items/abc", "url.scheme": "http"},
        )
    ]
    # RECORD_ONLY: processors see the span, exporters behind a SimpleSpanProcessor don't.
    assert t.exported == ()
    (span,) = t.recorder.ended
    assert not span.context.trace_flags.sampled
    assert span.attributes is not None
    assert span.attributes["sampler.said"] == "record"
    assert span.attributes["http.route"] == "/items/<sku>"
