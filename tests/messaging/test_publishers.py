"""SNS and EventBridge publishers against a real moto server: attributes, FIFO, traces, partial failures."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flotilla.messaging.envelope import extract_context, new_event, parse_body, unwrap
from flotilla.messaging.publishers import EventBridgePublisher, PublishError, SnsPublisher
from tests.resources.helpers import receive


@pytest.fixture
def boto(aws_endpoint: str) -> Any:
    return lambda name: boto3.client(name, endpoint_url=aws_endpoint, region_name="us-east-1")


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _queue(boto: Any, name: str, fifo: bool = False) -> tuple[str, str]:
    sqs = boto("sqs")
    attributes = {"FifoQueue": "true"} if fifo else {}
    url = sqs.create_queue(QueueName=name + (".fifo" if fifo else ""), Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _topic_to_queue(
    boto: Any, raw: bool, fifo: bool = False, filter_types: list[str] | None = None
) -> tuple[str, str]:
    name = f"pub-{uuid.uuid4().hex[:8]}"
    attributes = {"FifoTopic": "true"} if fifo else {}
    topic_arn = boto("sns").create_topic(Name=name + (".fifo" if fifo else ""), Attributes=attributes)[
        "TopicArn"
    ]
    url, queue_arn = _queue(boto, name, fifo)
    sub_attributes = {"RawMessageDelivery": str(raw).lower()}
    if filter_types:
        sub_attributes["FilterPolicy"] = json.dumps({"type": filter_types})
    boto("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes=sub_attributes)
    return topic_arn, url


def test_trace_continues_from_request_through_sns_and_sqs(boto: Any, spans: Any) -> None:
    provider, exporter = spans
    topic_arn, url = _topic_to_queue(boto, raw=False)
    publisher = SnsPublisher(boto("sns"), topic_arn, tracer_provider=provider)
    with provider.get_tracer("test").start_as_current_span("POST /orders") as request:
        event = new_event("order.placed", {"order_id": "o-1"}, source="flotilla.orders", subject="o-1")
        publisher.publish(event)

    (message,) = receive(boto("sqs"), url, expect=1)
    kind, _ = unwrap(message["Body"])
    received = parse_body(message["Body"])
    assert kind == "sns"  # raw delivery off: the envelope came wrapped in the SNS notification
    assert received == event
    request_context = request.get_span_context()
    parent = trace.get_current_span(extract_context(received)).get_span_context()
    assert (parent.trace_id, parent.span_id) == (request_context.trace_id, request_context.span_id)

    (producer,) = [span for span in exporter.get_finished_spans() if span.kind == trace.SpanKind.PRODUCER]
    assert producer.name == f"publish {topic_arn.rsplit(':', 1)[-1]}"
    assert producer.context.trace_id == request_context.trace_id
    assert producer.attributes["messaging.message.id"] == event.id


TRACE_FIELDS = {"traceparent", "tracestate"}


def test_filter_policy_sees_the_type_attribute(boto: Any) -> None:
    topic_arn, url = _topic_to_queue(boto, raw=True, filter_types=["order.placed"])
    publisher = SnsPublisher(boto("sns"), topic_arn)
    placed = new_event("order.placed", {"n": 1}, source="flotilla.orders")
    publisher.publish(placed)
    publisher.publish(new_event("order.cancelled", {"n": 2}, source="flotilla.orders"))
    (message,) = receive(boto("sqs"), url, expect=1)
    # Compared without trace fields: with a tracer provider active the publisher stamps its
    # producer span on an event that had none.
    assert parse_body(message["Body"]).model_dump(exclude=TRACE_FIELDS) == placed.model_dump(
        exclude=TRACE_FIELDS
    )


def test_relay_without_a_span_continues_the_events_trace(boto: Any, spans: Any) -> None:
    provider, exporter = spans
    topic_arn, url = _topic_to_queue(boto, raw=True)
    with provider.get_tracer("test").start_as_current_span("request") as request:
        event = new_event("order.placed", source="flotilla.orders")  # e.g. written to the outbox
    SnsPublisher(boto("sns"), topic_arn, tracer_provider=provider).publish(event)  # later, no span
    (producer,) = [span for span in exporter.get_finished_spans() if span.kind == trace.SpanKind.PRODUCER]
    assert producer.parent is not None and producer.parent.span_id == request.get_span_context().span_id
    (message,) = receive(boto("sqs"), url, expect=1)
    assert parse_body(message["Body"]).traceparent == event.traceparent


def test_fifo_topic_gets_group_and_dedup_ids(boto: Any) -> None:
    topic_arn, url = _topic_to_queue(boto, raw=True, fifo=True)
    publisher = SnsPublisher(boto("sns"), topic_arn)
    first = new_event("order.placed", {"n": 1}, source="flotilla.orders", subject="o-1")
    second = new_event("order.paid", {"n": 2}, source="flotilla.orders", subject="o-1")
    publisher.publish(first)
    publisher.publish(first)  # same event id: deduplicated
    publisher.publish(second)
    messages = receive(boto("sqs"), url, expect=2)
    assert [parse_body(message["Body"]).id for message in messages] == [first.id, second.id]


def test_eventbridge_batches_of_ten_reach_the_rule_target(boto: Any, spans: Any) -> None:
    provider, exporter = spans
    events_client, name = boto("events"), f"pub-{uuid.uuid4().hex[:8]}"
    events_client.create_event_bus(Name=name)
    url, queue_arn = _queue(boto, name)
    events_client.put_rule(
        Name=name, EventBusName=name, EventPattern=json.dumps({"source": ["flotilla.orders"]})
    )
    events_client.put_targets(Rule=name, EventBusName=name, Targets=[{"Id": "q", "Arn": queue_arn}])

    sent = [new_event("order.placed", {"n": i}, source="flotilla.orders") for i in range(12)]
    with provider.get_tracer("test").start_as_current_span("request") as request:
        EventBridgePublisher(events_client, name, tracer_provider=provider).publish_batch(sent)

    messages = receive(boto("sqs"), url, expect=12)
    received = sorted((parse_body(message["Body"]) for message in messages), key=lambda e: e.data["n"])
    assert [event.id for event in received] == [event.id for event in sent]
    # Created outside any span, so each is stamped with its batch's producer span, in the request's trace.
    assert {event.trace_id for event in received} == {f"{request.get_span_context().trace_id:032x}"}
    producers = [span for span in exporter.get_finished_spans() if span.kind == trace.SpanKind.PRODUCER]
    assert [span.attributes["messaging.batch.message_count"] for span in producers] == [10, 2]


class _FlakyEvents:
    """Passes PutEvents to moto but reports chosen entries as failed, the way EventBridge does (HTTP 200)."""

    def __init__(self, real: Any, failures: list[set[int]], code: str = "InternalFailure") -> None:
        self.real, self.failures, self.code, self.calls = real, failures, code, []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        failing = self.failures.pop(0) if self.failures else set()
        self.calls.append(len(Entries))
        passing = [entry for i, entry in enumerate(Entries) if i not in failing]
        if passing:
            self.real.put_events(Entries=passing)
        results = [
            {"ErrorCode": self.code, "ErrorMessage": "try again"} if i in failing else {"EventId": str(i)}
            for i in range(len(Entries))
        ]
        return {"FailedEntryCount": len(failing), "Entries": results}


def test_partial_failures_are_retried_with_backoff_until_all_are_in(boto: Any) -> None:
    real, name = boto("events"), f"pub-{uuid.uuid4().hex[:8]}"
    real.create_event_bus(Name=name)
    url, queue_arn = _queue(boto, name)
    real.put_rule(Name=name, EventBusName=name, EventPattern=json.dumps({"source": ["flotilla.orders"]}))
    real.put_targets(Rule=name, EventBusName=name, Targets=[{"Id": "q", "Arn": queue_arn}])
    flaky = _FlakyEvents(real, failures=[{1, 3}, {0}])
    sleeps: list[float] = []
    publisher = EventBridgePublisher(flaky, name, sleep=sleeps.append, jitter=lambda: 1.0, base_delay=0.1)

    sent = [new_event("order.placed", {"n": i}, source="flotilla.orders") for i in range(4)]
    publisher.publish_batch(sent)

    assert flaky.calls == [4, 2, 1]  # only the failed entries go again
    assert sleeps == [0.2, 0.4]  # full jitter (here the maximum): base * 2**attempt
    received = {parse_body(message["Body"]).id for message in receive(boto("sqs"), url, expect=4)}
    assert received == {event.id for event in sent}


def test_entries_still_failing_after_the_last_attempt_are_raised(boto: Any) -> None:
    flaky = _FlakyEvents(boto("events"), failures=[{0}, {0}, {0}], code="ThrottlingException")
    publisher = EventBridgePublisher(flaky, "default", max_attempts=3, sleep=lambda _: None)
    doomed, fine = (new_event("order.placed", {"n": i}, source="flotilla.orders") for i in range(2))
    with pytest.raises(PublishError) as err:
        publisher.publish_batch([doomed, fine])
    assert str(err.value) == "1 event(s) not put on bus default: ThrottlingException"
    assert [(event.id, why) for event, why in err.value.failed] == [
        (doomed.id, "ThrottlingException: try again")
    ]
    assert flaky.calls == [2, 1, 1]


def test_permanent_entry_errors_are_not_retried(boto: Any) -> None:
    flaky = _FlakyEvents(boto("events"), failures=[{0}], code="MalformedDetail")
    publisher = EventBridgePublisher(flaky, "default", sleep=lambda _: None)
    with pytest.raises(PublishError, match="MalformedDetail"):
        publisher.publish(new_event("order.placed", source="flotilla.orders"))
    assert flaky.calls == [1]


def test_the_size_check_leaves_room_for_the_trace_stamped_at_publish(boto: Any) -> None:
    from flotilla.messaging.publishers import EVENTBRIDGE_MAX_BYTES

    publisher = EventBridgePublisher(boto("events"), "default")
    # Just under the limit without trace fields: with them (added at publish) it would be over.
    filler = "x" * (EVENTBRIDGE_MAX_BYTES - 450)
    event = new_event("order.placed", {"note": filler}, source="flotilla.orders")
    assert event.traceparent is None
    with pytest.raises(PublishError, match="over the EventBridge entry limit"):
        publisher.publish(event)
