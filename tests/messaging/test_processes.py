"""``flotilla consume`` and ``flotilla outbox-relay`` as real processes, killed and stopped the hard ways:
SIGKILL mid-batch loses no message, SIGTERM finishes in-flight work and exits 0, a relay killed between
publishing and marking a row sent re-publishes it and the consumer's idempotency absorbs the repeat."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from flotilla.messaging.consumer import Consumer, ConsumerRunner
from flotilla.messaging.envelope import CloudEvent, new_event, to_json
from flotilla.messaging.idempotency import event_key
from flotilla.messaging.outbox import add_event, outbox_table
from tests.messaging.conftest import Queue, eventually, postgres_store, queue_depth, unique
from tests.support import FLOTILLA, ROOT, free_port

pytestmark = pytest.mark.slow


class Worker:
    """One ``flotilla <command> tests.messaging.worker_service:service [flags]`` process and its journal."""

    def __init__(self, command: str, tmp_path: Path, aws_endpoint: str, **settings: Any) -> None:
        self.port = free_port()
        self.journal = tmp_path / "journal.log"
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        env |= {
            "FLOTILLA_AWS_ENDPOINT_URL": aws_endpoint,
            "FLOTILLA_BIND": f"127.0.0.1:{self.port}",
            "FLOTILLA_TRACE_FILE": str(tmp_path / "traces.jsonl"),
            "WORKERTEST_JOURNAL": str(self.journal),
        }
        env |= {f"WORKERTEST_{k.upper()}": str(v) for k, v in settings.items()}
        name, *flags = command.split()
        self.log = (tmp_path / f"{name}-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(
            [*FLOTILLA, name, "tests.messaging.worker_service:service", *flags],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def lines(self, verb: str) -> list[str]:
        if not self.journal.exists():
            return []
        return [
            line.split(" ", 1)[1]
            for line in self.journal.read_text().splitlines()
            if line.startswith(verb + " ")
        ]

    def get(self, path: str) -> requests.Response | None:
        try:
            return requests.get(self.url + path, timeout=2)
        except requests.RequestException:
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def send(sqs: Any, queue: Queue, events: list[CloudEvent]) -> None:
    for start in range(0, len(events), 10):
        chunk = events[start : start + 10]
        sqs.send_message_batch(
            QueueUrl=queue.url,
            Entries=[{"Id": str(i), "MessageBody": to_json(e)} for i, e in enumerate(chunk)],
        )


def test_consumer_killed_mid_batch_loses_nothing(
    sqs: Any, make_queue: Any, aws_endpoint: str, tmp_path: Path, workers: list[Worker]
) -> None:
    queue = make_queue(visibility=2, max_receive_count=5)
    events = [new_event("order.placed", {"n": n}, source="tests.orders") for n in range(30)]
    send(sqs, queue, events)
    first = Worker("consume", tmp_path, aws_endpoint, queue=queue.name, stall_after=8, concurrency=4)
    workers.append(first)
    eventually(
        lambda: len(first.lines("done")) == 8 and len(first.lines("start")) > 8,
        what="eight events handled and more stuck mid-handler",
    )
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    done_before = set(first.lines("done"))
    interrupted = set(first.lines("start")) - done_before
    assert len(done_before) < len(events), "killed too late to prove anything"
    assert interrupted, "no handler was mid-way when the consumer was killed"

    second = Worker("consume", tmp_path, aws_endpoint, queue=queue.name, handler_seconds=0.0)
    workers.append(second)
    everything = {e.id for e in events}
    eventually(lambda: everything <= set(second.lines("done")), timeout=40, what="every event handled")
    eventually(lambda: queue_depth(sqs, queue.url) == 0, what="every message deleted")
    assert interrupted <= set(second.lines("done"))
    assert not sqs.receive_message(QueueUrl=queue.dlq_url).get("Messages")


def test_sigterm_finishes_in_flight_then_exits_zero(
    sqs: Any, make_queue: Any, aws_endpoint: str, tmp_path: Path, workers: list[Worker]
) -> None:
    queue = make_queue(visibility=30)
    events = [new_event("order.placed", {"n": n}, source="tests.orders") for n in range(3)]
    gate = tmp_path / "gate"
    worker = Worker("consume", tmp_path, aws_endpoint, queue=queue.name, gate=gate, concurrency=4)
    workers.append(worker)
    ready = eventually(lambda: (r := worker.get("/readyz")) is not None and r.status_code == 200 and r)
    assert ready.json()["checks"][f"sqs:{queue.name}"]["state"] == "ok"
    assert worker.get("/livez").status_code == 200  # type: ignore[union-attr]
    send(sqs, queue, events)
    eventually(lambda: len(worker.lines("start")) == 3, what="three handlers running")
    metrics = worker.get("/metrics").text  # type: ignore[union-attr]
    assert f'consumer_messages_received_total{{queue="{queue.name}",service="workertest"}} 3.0' in metrics
    assert f'consumer_messages_in_flight{{queue="{queue.name}",service="workertest"}} 3.0' in metrics

    worker.proc.send_signal(signal.SIGTERM)
    # The handlers are held at the gate: readiness says draining while they finish.
    # (a 503 Response is falsy, so wait on the status and read the body separately)
    eventually(lambda: (r := worker.get("/readyz")) is not None and r.status_code == 503, what="readyz 503")
    assert worker.get("/readyz").json()["status"] == "draining"  # type: ignore[union-attr]
    assert worker.proc.poll() is None, "exited with handlers still running"
    gate.touch()
    assert worker.proc.wait(30) == 0
    assert sorted(worker.lines("done")) == sorted(e.id for e in events)
    assert queue_depth(sqs, queue.url) == 0


def test_consume_without_declared_consumers_says_what_to_do(tmp_path: Path) -> None:
    result = subprocess.run(
        [*FLOTILLA, "consume", "sample"],
        cwd=ROOT,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env={**os.environ, "FLOTILLA_TRACE_FILE": str(tmp_path / "t.jsonl")},
    )
    assert result.returncode == 2
    assert "declares no consumers" in result.stderr


def _topic_queue_and_outbox(
    sqs: Any, make_queue: Any, aws_endpoint: str, engine: sa.Engine
) -> tuple[Any, str, str, sa.Table]:
    """A topic delivering raw to a fresh queue, and a fresh outbox table: what a relay test publishes through."""
    queue = make_queue(visibility=5)
    sns = boto3.client("sns", endpoint_url=aws_endpoint, region_name="us-east-1")
    topic = sns.create_topic(Name=unique("orders-events"))["TopicArn"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    table_name = unique("outbox").replace("-", "_")
    table = outbox_table(sa.MetaData(), table_name)
    table.create(engine)
    return queue, topic, table_name, table


def test_relay_killed_mid_publish_resumes_without_loss_or_double_effect(
    sqs: Any,
    make_queue: Any,
    aws_endpoint: str,
    database_url: str,
    engine: sa.Engine,
    tmp_path: Path,
    workers: list[Worker],
) -> None:
    queue, topic, table_name, table = _topic_queue_and_outbox(sqs, make_queue, aws_endpoint, engine)
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("POST /orders") as request_span, engine.begin() as conn:
        events = [new_event("order.placed", {"n": n}, source="tests.orders") for n in range(15)]
        for e in events:
            add_event(conn, e, "events", table=table)
    hang = events[6]
    settings = {"database_url": database_url, "outbox_table": table_name, "topic_arn": topic}

    first = Worker("outbox-relay", tmp_path, aws_endpoint, hang_after_publishing=hang.id, **settings)
    workers.append(first)
    eventually(lambda: hang.id in first.lines("published"), what="the relay to publish the event it hangs on")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    with engine.connect() as conn:
        unsent = set(conn.execute(sa.select(table.c.event_id).where(table.c.sent_at.is_(None))).scalars())
    assert hang.id in unsent, "published but never marked sent: the relay must publish it again"

    second = Worker("outbox-relay", tmp_path, aws_endpoint, **settings)
    workers.append(second)

    def all_sent() -> bool:
        with engine.connect() as conn:
            return not conn.execute(sa.select(table.c.id).where(table.c.sent_at.is_(None))).first()

    eventually(all_sent, what="every outbox row marked sent")
    published = Counter(second.lines("published"))
    assert published[hang.id] == 2, "the row in flight at the kill is published twice"

    # The consumer side: marker and effect in one Postgres transaction.
    store = postgres_store(engine)
    effects = sa.Table(unique("effects").replace("-", "_"), sa.MetaData(), sa.Column("event_id", sa.Text))
    effects.create(engine)
    trace_ids: list[str] = []

    def handle(event: CloudEvent) -> None:
        trace_ids.append(format(trace.get_current_span().get_span_context().trace_id, "032x"))
        with engine.begin() as conn:
            if store.record(conn, event_key(event)):
                conn.execute(effects.insert().values(event_id=event.id))

    runner = ConsumerRunner([Consumer(queue=queue.url, handler=handle, wait_seconds=1)], sqs, tracer=tracer)
    runner.start()
    try:
        eventually(lambda: len(trace_ids) >= sum(published.values()), what="every published copy consumed")
        eventually(lambda: queue_depth(sqs, queue.url) == 0, what="the queue drained")
    finally:
        runner.stop()
        threading.Thread(target=runner.wait, daemon=True).start()
    with engine.connect() as conn:
        counts = Counter(conn.execute(sa.select(effects.c.event_id)).scalars())
    assert counts == Counter({e.id: 1 for e in events})
    expected_trace = format(request_span.get_span_context().trace_id, "032x")
    assert set(trace_ids) == {expected_trace}, (
        "the consumer joins the trace of the request that wrote the outbox"
    )


def test_consume_with_outbox_relay_runs_both_in_one_process(
    sqs: Any,
    make_queue: Any,
    aws_endpoint: str,
    database_url: str,
    engine: sa.Engine,
    tmp_path: Path,
    workers: list[Worker],
) -> None:
    queue, topic, table_name, table = _topic_queue_and_outbox(sqs, make_queue, aws_endpoint, engine)
    events = [new_event("order.placed", {"n": n}, source="tests.orders") for n in range(5)]
    with engine.begin() as conn:
        for e in events:
            add_event(conn, e, "events", table=table)

    worker = Worker(
        "consume --outbox-relay",
        tmp_path,
        aws_endpoint,
        queue=queue.name,
        database_url=database_url,
        outbox_table=table_name,
        topic_arn=topic,
    )
    workers.append(worker)
    eventually(lambda: set(worker.lines("done")) == {e.id for e in events}, what="relayed events consumed")
    checks = worker.get("/readyz").json()["checks"]  # type: ignore[union-attr]
    assert set(checks) == {f"sqs:{queue.name}", "outbox:database"}
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(30) == 0
