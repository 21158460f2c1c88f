"""X-Ray trace headers as AWS sends them continue the caller's trace (``flotilla/tracing/xray.py``).

The ALB adds ``Root=...`` with no ``Parent`` and no ``Sampled``, and may put ``Self=...;`` first.
Each test builds a chassis app with ``Tracing(tracer_provider=...)`` and an in-memory exporter.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler

from flotilla.api import create_api
from flotilla.tracing import Tracing
from flotilla.tracing.provider import set_propagators

ROOT = "1-5759e988-bd862e3fe1be46a994272793"
TRACE_ID = "5759e988bd862e3fe1be46a994272793"
STAND_IN = "bd862e3fe1be46a994272793"[-16:]  # the Root's low 64 bits stand in for the parent
PARENT = "53995c3f42cd8ad8"
SELF = "Self=1-67891234-12456789abcdef012345678"
ALB_ROOT = "1-67891233-abcdef012345678912345678"
ALB_TRACE_ID = "67891233abcdef012345678912345678"


class App:
    """A chassis app on a provider of the test's own; the view records what it sees."""

    def __init__(self, sampler: Sampler | None = None) -> None:
        self.provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
        self.exporter = InMemorySpanExporter()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.current: list[trace.SpanContext] = []
        self.outgoing: list[dict[str, str]] = []
        self.app = self._build()

    def _build(self) -> Flask:
        app = create_api("xray")

        @app.get("/ping")
        def ping() -> dict[str, str]:
            self.current.append(trace.get_current_span().get_span_context())
            headers: dict[str, str] = {}
            propagate.inject(headers)  # what flotilla.http's ServiceClient does for each call
            self.outgoing.append(headers)
            return {"ok": "yes"}

        Tracing(app, tracer_provider=self.provider)
        return app

    def get(self, header: str, **more: str) -> None:
        response = self.app.test_client().get("/ping", headers={"X-Amzn-Trace-Id": header, **more})
        assert response.status_code == 200

    @property
    def span(self) -> ReadableSpan:
        (span,) = self.exporter.get_finished_spans()
        return span

    @property
    def seen(self) -> trace.SpanContext:
        (seen,) = self.current
        return seen


@pytest.fixture
def made() -> Iterator[list[App]]:
    apps: list[App] = []
    yield apps
    for one in apps:
        one.provider.shutdown()
    set_propagators()


@pytest.fixture
def app(made: list[App]) -> App:
    made.append(App())
    return made[-1]


def hex32(value: int) -> str:
    return format(value, "032x")


def hex16(value: int) -> str:
    return format(value, "016x")


def test_root_only_continues_the_alb_trace(app: App) -> None:
    app.get(f"Root={ROOT}")
    span = app.span
    assert hex32(span.context.trace_id) == TRACE_ID
    # No Parent: a remote stand-in for the ALB, never a real span of ours.
    assert span.parent is not None
    assert span.parent.is_remote
    assert hex32(span.parent.trace_id) == TRACE_ID
    assert hex16(span.parent.span_id) == STAND_IN
    # No Sampled: our sampler (the SDK's default, parent-based always-on) decided to sample.
    assert span.context.trace_flags.sampled


def test_self_before_root_is_ignored(app: App) -> None:
    app.get(f"{SELF};Root={ALB_ROOT}")
    span = app.span
    assert hex32(span.context.trace_id) == ALB_TRACE_ID
    assert span.parent is not None
    assert hex16(span.parent.span_id) == ALB_TRACE_ID[-16:]
    assert span.context.trace_flags.sampled


def test_root_only_sampled_1_is_sampled(app: App) -> None:
    app.get(f"{SELF};Root={ALB_ROOT};Sampled=1")
    span = app.span
    assert hex32(span.context.trace_id) == ALB_TRACE_ID
    assert span.context.trace_flags.sampled


def test_root_only_sampled_0_is_not_sampled_but_keeps_the_trace(app: App) -> None:
    app.get(f"Root={ROOT};Sampled=0")
    assert app.exporter.get_finished_spans() == ()
    assert hex32(app.seen.trace_id) == TRACE_ID
    assert not app.seen.trace_flags.sampled
    (outgoing,) = app.outgoing
    assert outgoing["X-Amzn-Trace-Id"].startswith(f"Root={ROOT};Parent=")
    assert outgoing["X-Amzn-Trace-Id"].endswith(";Sampled=0")


def test_parent_without_sampled_lets_our_sampler_decide(app: App) -> None:
    app.get(f"Root={ROOT};Parent={PARENT}")
    span = app.span  # the stock propagator read a missing Sampled as "not sampled"
    assert hex32(span.context.trace_id) == TRACE_ID
    assert span.parent is not None
    assert hex16(span.parent.span_id) == PARENT
    assert span.context.trace_flags.sampled


@pytest.mark.parametrize("root", [ALWAYS_ON, ALWAYS_OFF], ids=["keeps", "drops"])
def test_missing_sampled_asks_the_installed_sampler(made: list[App], root: Sampler) -> None:
    sampler = ParentBased(root)
    made.append(App(sampler))
    app = made[-1]
    set_propagators(sampler)  # as init_tracing installs them, with the process provider's sampler
    app.get(f"{SELF};Root={ALB_ROOT}")
    assert hex32(app.seen.trace_id) == ALB_TRACE_ID
    assert app.seen.trace_flags.sampled is (root is ALWAYS_ON)
    assert len(app.exporter.get_finished_spans()) == (1 if root is ALWAYS_ON else 0)


def test_outgoing_calls_carry_the_alb_root(app: App) -> None:
    app.get(f"{SELF};Root={ROOT}")
    span = app.span
    (outgoing,) = app.outgoing
    assert outgoing["X-Amzn-Trace-Id"] == f"Root={ROOT};Parent={hex16(span.context.span_id)};Sampled=1"
    assert outgoing["traceparent"] == f"00-{TRACE_ID}-{hex16(span.context.span_id)}-01"


def test_w3c_traceparent_still_wins_over_a_root_only_header(app: App) -> None:
    w3c = "0af7651916cd43dd8448eb211c80319c"
    app.get(f"Root={ROOT}", traceparent=f"00-{w3c}-b7ad6b7169203331-01")
    span = app.span
    assert hex32(span.context.trace_id) == w3c
    assert span.parent is not None
    assert hex16(span.parent.span_id) == "b7ad6b7169203331"
