"""Server spans: parenting on W3C and X-Ray headers, what is not traced, the file sink and waterfall."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flotilla_dev.waterfall import render_recent
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from flotilla.tracing import add_span_processor, tracer_provider
from flotilla.tracing.exporter import JsonLinesSpanExporter

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def spans(app: Any) -> InMemorySpanExporter:
    """Every span the process's real provider finishes, as the SDK hands them to exporters."""
    exporter = InMemorySpanExporter()
    add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def test_server_span_continues_the_w3c_trace(client: Any, spans: InMemorySpanExporter) -> None:
    client.get("/hello/ann", headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"})
    (span,) = [s for s in spans.get_finished_spans() if s.name == "GET /hello/<name>"]
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert format(span.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert span.kind is SpanKind.SERVER
    assert span.attributes["http.route"] == "/hello/<name>"
    assert span.attributes["http.response.status_code"] == 200
    # One provider per process: the resource names whichever service set it up first.
    assert span.resource.attributes["service.name"]


def test_server_span_continues_the_alb_xray_header(client: Any, spans: InMemorySpanExporter) -> None:
    client.get(
        "/ping",
        headers={
            "X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        },
    )
    (span,) = [s for s in spans.get_finished_spans() if s.name == "GET /ping"]
    assert format(span.context.trace_id, "032x") == "5759e988bd862e3fe1be46a994272793"
    assert format(span.parent.span_id, "016x") == "53995c3f42cd8ad8"


def test_unsampled_parent_is_respected(client: Any, spans: InMemorySpanExporter) -> None:
    client.get("/ping", headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-00"})
    assert [s for s in spans.get_finished_spans() if s.name == "GET /ping"] == []


def test_health_and_metrics_are_not_traced(client: Any, spans: InMemorySpanExporter) -> None:
    for path in ("/livez", "/readyz", "/metrics"):
        client.get(path)
    client.get("/ping")
    assert [s.name for s in spans.get_finished_spans()] == ["GET /ping"]


def test_server_error_marks_span_and_logs_trace_id(
    app: Any, client: Any, spans: InMemorySpanExporter, logs: Any
) -> None:
    @app.get("/explode")
    def explode() -> None:
        raise RuntimeError("database password=hunter2 leaked in message")

    answer = client.get("/explode", headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"})
    assert answer.status_code == 500
    (span,) = [s for s in spans.get_finished_spans() if s.name == "GET /explode"]
    assert span.status.status_code.name == "ERROR"
    (event,) = span.events  # errors.py records the crash on the (SDK) server span
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "RuntimeError"
    (crash,) = logs.where(logger="flotilla.errors")
    assert crash["trace_id"] == TRACE_ID
    assert crash["request_id"] == answer.json["request_id"]
    assert "RuntimeError" in crash["exception"]


def test_file_exporter_and_waterfall(tmp_path: Path, app: Any, client: Any) -> None:
    from opentelemetry import propagate, trace

    path = tmp_path / "spans.jsonl"
    exporter = JsonLinesSpanExporter(path)
    add_span_processor(SimpleSpanProcessor(exporter))
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("checkout"), tracer.start_as_current_span("reserve stock"):
        headers: dict[str, str] = {}
        propagate.inject(headers)  # as an outgoing HTTP call would
        client.get("/hello/ann", headers=headers)
    exporter.shutdown()
    text = render_recent(path, limit=1)
    lines = text.splitlines()
    assert lines[0].startswith("trace ") and "3 spans" in lines[0]
    service = tracer_provider().resource.attributes["service.name"]
    assert lines[1].startswith(f"  checkout [{service}]")
    assert lines[2].startswith(f"    reserve stock [{service}]")
    assert lines[3].startswith(f"      GET /hello/<name> [{service}]")
    assert all(" ms  |" in line for line in lines[1:])


def test_waterfall_on_missing_file(tmp_path: Path) -> None:
    assert render_recent(tmp_path / "none.jsonl") == f"no traces in {tmp_path / 'none.jsonl'}"
