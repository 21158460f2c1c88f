"""The consumer runner in-process against a moto server: batches, deletes, backoff to the DLQ, heartbeats,
trace continuation, idempotency and a clean stop. Outcomes are awaited, never timed."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from flotilla.backoff import Backoff
from flotilla.messaging.consumer import REDELIVERY_BACKOFF, Consumer, ConsumerMetrics, ConsumerRunner
from flotilla.messaging.envelope import CloudEvent, new_event, to_json
from flotilla.messaging.idempotency import DynamoDBIdempotencyStore, IdempotencyStore
from tests.messaging.conftest import Queue, dynamodb_table, eventually, postgres_store, queue_depth

FAST_RETRY = Backoff(base_seconds=1, max_seconds=1, full_jitter=False)


class Harness:
    """Runs consumers in this process and stops them at the end of the test, whatever happened."""

    def __init__(self, sqs: Any) -> None:
        self.sqs = sqs
        self.runners: list[ConsumerRunner] = []
        self.registry = CollectorRegistry()

    def run(self, *consumers: Consumer, **kwargs: Any) -> ConsumerRunner:
        runner = ConsumerRunner(
            consumers, self.sqs, service="t", metrics=ConsumerMetrics(self.registry, "t"), **kwargs
        )
        runner.start()
        self.runners.append(runner)
        return runner

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, {"service": "t", **labels}) or 0.0

    def stop(self) -> None:
        for runner in self.runners:
            runner.stop()
        for runner in self.runners:
            runner.wait()


@pytest.fixture
def harness(sqs: Any) -> Iterator[Harness]:
    h = Harness(sqs)
    yield h
    h.stop()


def send(sqs: Any, queue: Queue, *events: CloudEvent) -> None:
    for start in range(0, len(events), 10):
        sqs.send_message_batch(
            QueueUrl=queue.url,
            Entries=[
                {"Id": str(i), "MessageBody": to_json(e)} for i, e in enumerate(events[start : start + 10])
            ],
        )


def event(type_: str = "order.placed", **data: Any) -> CloudEvent:
    return new_event(type_, data, source="tests.orders")


def consumer(queue: Queue, handler: Callable[[CloudEvent], object], **kwargs: Any) -> Consumer:
    kwargs.setdefault("wait_seconds", 1)
    kwargs.setdefault("backoff", FAST_RETRY)
    return Consumer(queue=queue.name, handler=handler, **kwargs)


def test_processes_every_message_once_and_deletes_it(sqs: Any, make_queue: Any, harness: Harness) -> None:
    queue = make_queue(visibility=10)
    events = [event(n=n) for n in range(25)]
    seen: list[str] = []
    lock = threading.Lock()

    def handle(e: CloudEvent) -> None:
        with lock:
            seen.append(e.id)

    harness.run(consumer(queue, handle, concurrency=4))
    send(sqs, queue, *events)
    eventually(lambda: len(seen) >= 25, what="25 events handled")
    eventually(lambda: queue_depth(sqs, queue.url) == 0, what="the queue to be empty (all deleted)")
    assert sorted(seen) == sorted(e.id for e in events)
    assert harness.metric("consumer_messages_processed_total", queue=queue.name, outcome="ok") == 25
    assert harness.metric("consumer_messages_received_total", queue=queue.name) == 25


def test_consumer_span_continues_the_producers_trace(sqs: Any, make_queue: Any, harness: Harness) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    queue = make_queue()
    with tracer.start_as_current_span("place order") as producer:
        placed = event()
    handled: list[str | None] = []

    def handle(e: CloudEvent) -> None:
        from opentelemetry import trace

        handled.append(format(trace.get_current_span().get_span_context().trace_id, "032x"))

    harness.run(consumer(queue, handle), tracer=tracer)
    send(sqs, queue, placed)
    eventually(lambda: handled, what="the event handled")
    spans = eventually(lambda: [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CONSUMER])
    span = spans[0]
    assert span.name == f"process {queue.name}"
    assert span.parent is not None
    assert span.parent.span_id == producer.get_span_context().span_id
    assert span.context.trace_id == producer.get_span_context().trace_id
    assert handled == [placed.trace_id]
    assert span.attributes is not None
    assert span.attributes["cloudevents.event_id"] == placed.id
    assert span.attributes["messaging.destination.name"] == queue.name


def test_poison_and_garbage_reach_the_dlq_after_max_receives(
    sqs: Any, make_queue: Any, harness: Harness
) -> None:
    queue = make_queue(visibility=5, max_receive_count=3)
    attempts: Counter[str] = Counter()
    good: list[str] = []

    def handle(e: CloudEvent) -> None:
        attempts[e.type] += 1
        if e.type == "poison":
            raise RuntimeError("cannot handle this one")
        good.append(e.id)

    harness.run(consumer(queue, handle))
    poison, fine = event("poison"), event()
    send(sqs, queue, poison, fine)
    sqs.send_message(QueueUrl=queue.url, MessageBody="not json at all")

    def dead_letters() -> list[dict[str, Any]]:
        found.extend(sqs.receive_message(QueueUrl=queue.dlq_url, MaxNumberOfMessages=10).get("Messages", []))
        return found if len(found) >= 2 else []

    found: list[dict[str, Any]] = []
    eventually(dead_letters, timeout=40, what="poison and garbage in the DLQ")
    bodies = {m["Body"] for m in found}
    assert to_json(poison) in bodies
    assert "not json at all" in bodies
    assert attempts["poison"] == queue.max_receive_count
    assert good == [fine.id]
    assert harness.metric("consumer_messages_processed_total", queue=queue.name, outcome="failed") == 3
    assert harness.metric("consumer_messages_processed_total", queue=queue.name, outcome="invalid") == 3


def test_heartbeat_keeps_a_slow_handler_exclusive(sqs: Any, make_queue: Any, harness: Harness) -> None:
    # Visibility 1 s, handler 3 s: without the heartbeat a free worker would receive it again mid-way.
    queue = make_queue(visibility=1)
    calls: list[str] = []
    release = threading.Event()

    def handle(e: CloudEvent) -> None:
        calls.append(e.id)
        release.wait(3)

    harness.run(consumer(queue, handle, concurrency=2), heartbeat_interval=0.2)
    slow = event()
    send(sqs, queue, slow)
    eventually(lambda: calls, what="the handler to start")
    threading.Event().wait(2.5)  # three visibility timeouts pass while the handler runs
    release.set()
    eventually(lambda: queue_depth(sqs, queue.url) == 0, what="the message deleted")
    assert calls == [slow.id]


def test_stop_finishes_in_flight_and_deletes(sqs: Any, make_queue: Any, harness: Harness) -> None:
    queue = make_queue(visibility=30)
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def handle(e: CloudEvent) -> None:
        started.set()
        release.wait(10)
        done.append(e.id)

    runner = harness.run(consumer(queue, handle))
    send(sqs, queue, event())
    assert started.wait(10)
    runner.stop()
    waiter = threading.Thread(target=runner.wait)
    waiter.start()
    waiter.join(2)  # a bounded wait: a wait() that ignored the handler would be back by now
    assert waiter.is_alive(), "wait() returned while a handler was still running"
    release.set()
    waiter.join(10)
    assert not waiter.is_alive()
    assert len(done) == 1
    assert queue_depth(sqs, queue.url) == 0


@pytest.fixture(params=["postgres", "dynamodb"])
def store(request: pytest.FixtureRequest) -> IdempotencyStore:
    if request.param == "postgres":
        return postgres_store(request.getfixturevalue("engine"))
    client = boto3.client(
        "dynamodb", endpoint_url=request.getfixturevalue("aws_endpoint"), region_name="us-east-1"
    )
    return DynamoDBIdempotencyStore(client, dynamodb_table(client))


def test_redelivered_event_has_exactly_one_effect(
    sqs: Any, make_queue: Any, harness: Harness, store: IdempotencyStore
) -> None:
    """The same event arriving three times (a re-publish, a lost delete) runs the handler once."""
    queue = make_queue()
    effects: list[str] = []
    once, other = event(), event()

    harness.run(consumer(queue, lambda e: effects.append(e.id), idempotency=store, concurrency=1))
    send(sqs, queue, once, once, other)
    eventually(lambda: len(effects) == 2, what="two distinct events handled")
    eventually(lambda: queue_depth(sqs, queue.url) == 0, what="all three messages deleted")
    send(sqs, queue, once)
    eventually(
        lambda: (
            harness.metric("consumer_messages_processed_total", queue=queue.name, outcome="duplicate") == 2
        ),
        what="the later copies acknowledged as duplicates",
    )
    eventually(lambda: queue_depth(sqs, queue.url) == 0)
    assert sorted(effects) == sorted([once.id, other.id])


def test_failed_handler_releases_its_claim_for_the_retry(
    sqs: Any, make_queue: Any, harness: Harness, engine: sa.Engine
) -> None:
    queue = make_queue()
    calls: list[int] = []

    def flaky(e: CloudEvent) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("transient")

    harness.run(consumer(queue, flaky, idempotency=postgres_store(engine)))
    send(sqs, queue, event())
    eventually(lambda: len(calls) == 2, what="the retry to run the handler again")
    eventually(lambda: queue_depth(sqs, queue.url) == 0, what="the retried message deleted")
    assert len(calls) == 2


def test_backoff_doubles_with_the_receive_count_up_to_its_cap() -> None:
    backoff = Backoff(base_seconds=2, max_seconds=30, full_jitter=False)
    assert [backoff.whole_seconds(count - 1) for count in range(1, 7)] == [2, 4, 8, 16, 30, 30]
    slow = Backoff(base_seconds=0.3, max_seconds=900, full_jitter=False)
    assert slow.whole_seconds(0) == 1, "SQS takes whole seconds: round up, never to zero"
    huge = Backoff(base_seconds=3600, max_seconds=10**9, full_jitter=False)
    assert huge.whole_seconds(19) == 12 * 3600, "SQS's 12 h ceiling"


def test_default_redelivery_schedule_is_unchanged_and_not_jittered() -> None:
    assert Consumer(queue="q", handler=print).backoff is REDELIVERY_BACKOFF
    schedule = [REDELIVERY_BACKOFF.whole_seconds(count - 1) for count in range(1, 12)]
    assert schedule == [2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
    assert REDELIVERY_BACKOFF.whole_seconds(5000) == 900, "a message retried for days must not overflow"


def test_a_failed_message_is_delayed_by_the_backoff_of_its_receive_count() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.delays: list[int] = []

        def change_message_visibility(
            self, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int
        ) -> None:
            self.delays.append(VisibilityTimeout)

    def fail(_: CloudEvent) -> None:
        raise RuntimeError("boom")

    sqs = Recorder()
    runner = ConsumerRunner([Consumer(queue="https://sqs.local/q", handler=fail)], sqs)
    loop = runner._loops[0]
    body = to_json(event())
    for count in (1, 2, 5):
        message = {"MessageId": "m", "ReceiptHandle": f"r{count}", "Body": body}
        message["Attributes"] = {"ApproximateReceiveCount": str(count)}
        assert loop._handle(message) == "failed"
    assert sqs.delays == [2, 4, 32]


def test_consumer_settings_outside_what_sqs_accepts_fail_at_declaration() -> None:
    for bad in ({"batch_size": 11}, {"wait_seconds": 21}, {"concurrency": 0}, {"visibility_timeout": 0}):
        with pytest.raises(ValueError):
            Consumer(queue="q", handler=print, **bad)  # type: ignore[arg-type]
