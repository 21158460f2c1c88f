"""The CloudEvents envelope: structured-mode JSON, trace context, and the three wrappings a queue sees."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from flotilla.messaging.envelope import (
    CloudEvent,
    InvalidEnvelope,
    extract_context,
    new_event,
    parse_body,
    to_dict,
    to_json,
    unwrap,
    with_trace,
)

_tracer = TracerProvider().get_tracer("test")


def test_structured_mode_json_has_the_cloudevents_attributes() -> None:
    event = new_event(
        "order.placed",
        {"order_id": "o-1", "total": 12.5},
        source="flotilla.orders",
        subject="o-1",
        id="e-1",
        time=datetime(2026, 11, 26, 14, 0, tzinfo=UTC),
    )
    assert json.loads(to_json(event)) == {
        "specversion": "1.0",
        "id": "e-1",
        "source": "flotilla.orders",
        "type": "order.placed",
        "time": "2026-11-26T14:00:00.000Z",
        "subject": "o-1",
        "datacontenttype": "application/json",
        "data": {"order_id": "o-1", "total": 12.5},
    }


def test_event_created_inside_a_span_carries_its_trace_and_round_trips() -> None:
    with _tracer.start_as_current_span("request") as span:
        event = new_event("order.placed", {"n": 1}, source="flotilla.orders")
    context = span.get_span_context()
    assert event.trace_id == f"{context.trace_id:032x}"
    assert event.traceparent == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"

    parsed = parse_body(to_json(event))
    assert parsed == event
    parent = trace.get_current_span(extract_context(parsed)).get_span_context()
    assert (parent.trace_id, parent.span_id, parent.is_remote) == (context.trace_id, context.span_id, True)


def test_without_a_span_there_is_no_trace_and_extract_gives_a_fresh_root() -> None:
    event = new_event("order.placed", source="flotilla.orders")
    assert event.traceparent is None
    assert "datacontenttype" not in to_dict(event)
    assert not trace.get_current_span(extract_context(event)).get_span_context().is_valid
    with _tracer.start_as_current_span("relay") as span:
        stamped = with_trace(event)
    assert stamped.trace_id == f"{span.get_span_context().trace_id:032x}"
    assert with_trace(stamped) is stamped


def test_bytes_travel_as_data_base64_and_extensions_survive() -> None:
    event = new_event("blob.stored", b"\x00\x01", source="flotilla.files", extensions={"tenant": "acme"})
    parsed = parse_body(to_json(event).encode())
    assert parsed.binary_data() == b"\x00\x01"
    assert parsed.datacontenttype == "application/octet-stream"
    assert parsed.extensions == {"tenant": "acme"}


def test_sns_notification_and_eventbridge_event_are_unwrapped() -> None:
    event = new_event("order.placed", {"n": 1}, source="flotilla.orders")
    sns = {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:local-orders-events",
        "Message": to_json(event),
    }
    bridge = {
        "version": "0",
        "id": "b-1",
        "detail-type": "order.placed",
        "source": "flotilla.orders",
        "detail": to_dict(event),
    }
    assert unwrap(to_json(event))[0] == "raw"
    assert unwrap(json.dumps(sns)) == ("sns", to_dict(event))
    assert unwrap(bridge) == ("eventbridge", to_dict(event))
    assert parse_body(json.dumps(sns)) == parse_body(json.dumps(bridge)) == event


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "message body is not JSON"),
        ("[1]", "JSON but not an object (got list)"),
        (
            '{"hello": 1}',
            "neither a CloudEvent, an SNS notification nor an EventBridge event (top-level keys: hello)",
        ),
        ('{"specversion": "0.3", "id": "x"}', "unsupported CloudEvents specversion '0.3'"),
        ('{"specversion": "1.0", "id": "x", "type": "t"}', "invalid CloudEvent: source: Field required"),
        (
            '{"specversion": "1.0", "source": "s", "type": "t", "traceparent": "nope"}',
            "traceparent: Value error, traceparent is not a W3C trace context header",
        ),
        ('{"specversion": "1.0", "source": "s", "type": "t", "Bad-Ext": 1}', "extension attribute 'Bad-Ext'"),
        (
            '{"Type": "Notification", "TopicArn": "arn", "Message": 5}',
            "SNS notification has no Message string",
        ),
    ],
)
def test_bad_bodies_fail_with_one_readable_line(body: str, message: str) -> None:
    with pytest.raises(InvalidEnvelope) as err:
        parse_body(body)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_naive_times_are_taken_as_utc() -> None:
    event = CloudEvent(source="s", type="t", time=datetime(2026, 1, 1, 12, 0))
    assert to_dict(event)["time"] == "2026-01-01T12:00:00.000Z"
