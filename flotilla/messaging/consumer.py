"""SQS consumer runner: long polling, a bounded worker pool, heartbeats, batch deletes, backoff, clean stop.

A service declares :class:`Consumer` objects (queue + handler); :class:`ConsumerRunner` runs them.
The rules it keeps, and why:

- **Delete only on success.** A message is deleted (in batches of up to ten) after its handler
  returned; a crash anywhere before that leaves it on the queue, to come back after the visibility
  timeout. Delivery is at-least-once, so handlers are idempotent (``Consumer(idempotency=)``).
- **Failures back off through visibility, never through re-sending.** A failed message's visibility
  is set to an exponential delay in its receive count; SQS's redrive policy then moves it to the
  dead-letter queue after ``maxReceiveCount`` receives. Deleting and re-sending (or holding a failing
  message with heartbeats) would reset that count and keep a poison message forever.
- **Heartbeat.** While a handler runs past half the visibility timeout its message's visibility is
  extended, so a slow handler doesn't make a second consumer run the same message in parallel.
- **Bounded work.** The poller receives only as many messages as there are free workers, so
  messages never sit received-but-idle while their visibility timeout runs down.
- **Stop.** :meth:`ConsumerRunner.stop` stops polling; in-flight handlers finish and their deletes
  are flushed. Messages a long poll returns after the stop are made visible again at once.
"""

from __future__ import annotations

import functools
import logging
import math
import queue as queue_module
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from flotilla.backoff import MAX_VISIBILITY_SECONDS, Backoff
from flotilla.messaging.envelope import CloudEvent, InvalidEnvelope, extract_context, parse_body
from flotilla.messaging.idempotency import ClaimState, IdempotencyStore, event_key

log = logging.getLogger(__name__)

Handler = Callable[[CloudEvent], object]

HANDLER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

# Redelivery after a failure: 2, 4, 8 ... 900 s by receive count. No jitter: the spread comes from the
# messages themselves (each fails at its own time), and a fixed schedule makes the time to the
# dead-letter queue predictable.
REDELIVERY_BACKOFF = Backoff(base_seconds=2.0, max_seconds=900.0, full_jitter=False)


@dataclass(frozen=True)
class Consumer:
    """One queue and the handler for its events.

    ``queue`` is a queue name (resolved with ``GetQueueUrl``) or a queue URL. ``visibility_timeout``
    overrides the queue's own for each receive; leave it unset to use the queue's. With
    ``idempotency`` set, each event is claimed in the store before the handler runs and marked
    processed after, so a redelivered event is acknowledged without running the handler again.
    """

    queue: str
    handler: Handler
    name: str = ""
    concurrency: int = 4
    batch_size: int = 10
    wait_seconds: int = 20
    visibility_timeout: int | None = None
    backoff: Backoff = REDELIVERY_BACKOFF
    idempotency: IdempotencyStore | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 10:
            raise ValueError("batch_size must be 1..10 (SQS returns at most ten messages per receive)")
        if not 0 <= self.wait_seconds <= 20:
            raise ValueError("wait_seconds must be 0..20 (SQS long polling waits at most 20 s)")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.visibility_timeout is not None and not 1 <= self.visibility_timeout <= MAX_VISIBILITY_SECONDS:
            raise ValueError("visibility_timeout must be 1..43200 seconds")

    @property
    def label(self) -> str:
        """The name used in metrics, logs and spans: ``name`` or the queue's name."""
        return self.name or self.queue.rstrip("/").rsplit("/", 1)[-1]


class ConsumerMetrics:
    """Consumer metrics, labelled by service and queue; pass ``registry=None`` in multiprocess mode."""

    def __init__(self, registry: CollectorRegistry | None, service: str = "") -> None:
        kwargs: dict[str, Any] = {"registry": registry}
        self.service = service
        self.received = Counter(
            "consumer_messages_received", "Messages received from SQS.", ["service", "queue"], **kwargs
        )
        self.processed = Counter(
            "consumer_messages_processed",
            "Messages handled, by outcome: ok, duplicate (already processed), busy (another consumer "
            "has it), failed (handler raised; retried after backoff), invalid (not a CloudEvent; "
            "left for the DLQ).",
            ["service", "queue", "outcome"],
            **kwargs,
        )
        self.duration = Histogram(
            "consumer_handler_duration_seconds",
            "Time a handler took, success or failure.",
            ["service", "queue"],
            buckets=HANDLER_BUCKETS,
            **kwargs,
        )
        self.in_flight = Gauge(
            "consumer_messages_in_flight",
            "Messages received and not yet finished.",
            ["service", "queue"],
            multiprocess_mode="livesum",
            **kwargs,
        )


@dataclass
class _InFlight:
    """One received message whose handler hasn't finished, keyed by receipt handle (unique per receive)."""

    message_id: str
    received_at: float
    visible_until: float
    key: str | None = None


class _QueueLoop:
    """The poller, worker pool and delete batcher of one :class:`Consumer`."""

    def __init__(
        self,
        consumer: Consumer,
        sqs: Any,
        *,
        metrics: ConsumerMetrics,
        tracer: trace.Tracer,
        stopping: threading.Event,
        ack_linger: float,
        fill_linger: float,
    ) -> None:
        self.consumer = consumer
        self.sqs = sqs
        self.label = consumer.label
        self.metrics = metrics
        self.tracer = tracer
        self.stopping = stopping
        self.ack_linger = ack_linger
        self.queue_url = ""
        self.visibility = consumer.visibility_timeout or 30
        self.fill_linger = fill_linger
        self._slots = threading.Semaphore(consumer.concurrency)
        self._submit_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(consumer.concurrency, thread_name_prefix=f"consume-{self.label}")
        self._in_flight: dict[str, _InFlight] = {}
        self._in_flight_lock = threading.Lock()
        self._acks: queue_module.Queue[tuple[str, str] | None] = queue_module.Queue()
        self._poller = threading.Thread(target=self._poll, name=f"poll-{self.label}", daemon=True)
        self._acker = threading.Thread(target=self._ack_loop, name=f"ack-{self.label}", daemon=True)
        labels = (metrics.service, self.label)
        self._m_received = metrics.received.labels(*labels)
        self._m_duration = metrics.duration.labels(*labels)
        self._m_in_flight = metrics.in_flight.labels(*labels)
        # Bound once: a labels() lookup per message would take the metric's lock every time.
        self._m_processed = {
            outcome: metrics.processed.labels(*labels, outcome)
            for outcome in ("ok", "duplicate", "busy", "failed", "invalid")
        }

    # --- lifecycle --------------------------------------------------------------------------------

    def resolve(self) -> None:
        """Find the queue URL and visibility timeout; warn when nothing will ever dead-letter."""
        queue = self.consumer.queue
        self.queue_url = queue if "://" in queue else self.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
        )["Attributes"]
        if self.consumer.visibility_timeout is None:
            self.visibility = int(attrs.get("VisibilityTimeout", "30"))
        if "RedrivePolicy" not in attrs:
            log.warning(
                "queue %s has no redrive policy: a message that always fails is retried until it expires",
                self.label,
            )

    def start(self) -> None:
        self._acker.start()
        self._poller.start()

    @property
    def poller_alive(self) -> bool:
        return self._poller.is_alive()

    def drain(self, poll_grace: float) -> None:
        """After ``stopping`` is set: finish in-flight handlers, flush deletes, give the poller a moment."""
        with self._submit_lock:  # the poller submits nothing once it sees ``stopping`` under this lock
            pass
        self._pool.shutdown(wait=True)
        self._acks.put(None)
        self._acker.join()
        self._poller.join(poll_grace)

    # --- polling ----------------------------------------------------------------------------------

    def _poll(self) -> None:
        consumer = self.consumer
        errors = 0
        while not self.stopping.is_set():
            if not self._slots.acquire(timeout=0.5):
                continue
            wanted = 1
            # Let a few more workers come free before receiving: one receive call per freed worker
            # would cost a round trip per message under load. Slow handlers lose at most this linger.
            linger_until = time.monotonic() + self.fill_linger
            while wanted < consumer.batch_size and self._slots.acquire(
                timeout=max(0.0, linger_until - time.monotonic())
            ):
                wanted += 1
            try:
                messages = self._receive(wanted)
                errors = 0
            except Exception as err:
                self._release_slots(wanted)
                errors += 1
                log.warning("receive from %s failed: %s", self.label, err)
                self.stopping.wait(min(30.0, 0.5 * 2**errors))
                continue
            self._release_slots(wanted - len(messages))
            with self._submit_lock:
                if self.stopping.is_set():
                    self._return_unstarted(messages)
                    self._release_slots(len(messages))
                    break
                now = time.monotonic()
                for message in messages:
                    self._m_received.inc()
                    self._m_in_flight.inc()
                    with self._in_flight_lock:
                        self._in_flight[message["ReceiptHandle"]] = _InFlight(
                            message["MessageId"], now, now + self.visibility
                        )
                    self._pool.submit(self._process, message)

    def _receive(self, count: int) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": count,
            "WaitTimeSeconds": self.consumer.wait_seconds,
            "MessageAttributeNames": ["All"],
            "MessageSystemAttributeNames": ["ApproximateReceiveCount", "SentTimestamp"],
        }
        if self.consumer.visibility_timeout is not None:
            request["VisibilityTimeout"] = self.consumer.visibility_timeout
        with suppress_instrumentation():  # an idle long poll every 20 s is not a trace anyone wants
            messages: list[dict[str, Any]] = self.sqs.receive_message(**request).get("Messages", [])
        return messages

    def _release_slots(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()

    def _return_unstarted(self, messages: list[dict[str, Any]]) -> None:
        """Make messages received during a stop visible again now, instead of after the timeout."""
        if messages:
            self._change_visibility_batch([(m["MessageId"], m["ReceiptHandle"]) for m in messages], 0)

    # --- handling ---------------------------------------------------------------------------------

    def _process(self, message: dict[str, Any]) -> None:
        outcome = "failed"
        try:
            outcome = self._handle(message)
        except Exception:  # a bug in the runner's own calls; the message comes back after its timeout
            log.exception("consumer %s could not finish message %s", self.label, message.get("MessageId"))
        finally:
            with self._in_flight_lock:
                self._in_flight.pop(message["ReceiptHandle"], None)
            self._m_processed[outcome].inc()
            self._m_in_flight.dec()
            self._slots.release()

    def _handle(self, message: dict[str, Any]) -> str:
        receive_count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        message_id = message["MessageId"]
        try:
            event = parse_body(message["Body"])
        except InvalidEnvelope as err:
            log.warning(
                "message %s on %s is not a CloudEvent (receive %d): %s",
                message_id,
                self.label,
                receive_count,
                err,
            )
            self._retry_later(message, receive_count)
            return "invalid"
        attributes = {
            "messaging.system": "aws_sqs",
            "messaging.operation.type": "process",
            "messaging.destination.name": self.label,
            "messaging.message.id": message_id,
            "messaging.aws.sqs.receive_count": receive_count,
            "cloudevents.event_id": event.id,
            "cloudevents.event_source": event.source,
            "cloudevents.event_type": event.type,
        }
        if event.subject:
            attributes["cloudevents.event_subject"] = event.subject
        with self.tracer.start_as_current_span(
            f"process {self.label}",
            context=self._parent(event, message),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            store = self.consumer.idempotency
            key = event_key(event) if store is not None else None
            if store is not None and key is not None:
                claim = store.claim(key, self.visibility)
                if claim.state is ClaimState.DONE:
                    span.set_attribute("flotilla.duplicate", True)
                    self._ack(message)
                    return "duplicate"
                if claim.state is ClaimState.BUSY:
                    self._change_visibility(message, math.ceil(claim.retry_after) + 1)
                    return "busy"
                with self._in_flight_lock:
                    if message["ReceiptHandle"] in self._in_flight:
                        self._in_flight[message["ReceiptHandle"]].key = key
            started = time.perf_counter()
            try:
                self.consumer.handler(event)
            except Exception as err:
                self._m_duration.observe(time.perf_counter() - started)
                span.record_exception(err)
                span.set_status(Status(StatusCode.ERROR, type(err).__name__))
                log.warning(
                    "handler for %s failed on event %s (%s), receive %d: %s",
                    self.label,
                    event.id,
                    event.type,
                    receive_count,
                    err,
                    exc_info=True,
                )
                if store is not None and key is not None:
                    self._quietly(f"release {key}", lambda: store.release(key))
                self._retry_later(message, receive_count)
                return "failed"
            self._m_duration.observe(time.perf_counter() - started)
            if store is not None and key is not None:
                # Delete even if the marker fails: the effect happened, and a redelivery would only
                # find a stale lease and run the handler a second time.
                self._quietly(f"complete {key}", lambda: store.complete(key))
            self._ack(message)
            return "ok"

    @staticmethod
    def _parent(event: CloudEvent, message: dict[str, Any]) -> Any:
        """The producer's context: the envelope's ``traceparent``, else the message attributes."""
        if event.traceparent:
            return extract_context(event)
        carrier = {
            name: value["StringValue"]
            for name, value in message.get("MessageAttributes", {}).items()
            if "StringValue" in value
        }
        return propagate.extract(carrier)

    def _retry_later(self, message: dict[str, Any], receive_count: int) -> None:
        # The first receive failed: that's retry 0, so the delay starts at the backoff's base.
        self._change_visibility(message, self.consumer.backoff.whole_seconds(receive_count - 1))

    def _change_visibility(self, message: dict[str, Any], seconds: int) -> None:
        try:
            with suppress_instrumentation():
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=seconds
                )
        except Exception as err:  # the receipt may have expired; the message comes back on its own
            log.warning("could not delay message %s on %s: %s", message["MessageId"], self.label, err)

    @staticmethod
    def _quietly(what: str, call: Callable[[], object]) -> None:
        try:
            call()
        except Exception as err:
            log.warning("idempotency store: %s failed: %s", what, err)

    # --- deletes ----------------------------------------------------------------------------------

    def _ack(self, message: dict[str, Any]) -> None:
        self._acks.put((message["MessageId"], message["ReceiptHandle"]))

    def _ack_loop(self) -> None:
        """Delete acknowledged messages ten at a time, waiting ``ack_linger`` for a batch to fill.

        ``None`` (queued by ``drain`` after the pool has finished) is the last item: everything
        before it is deleted first, and nothing can arrive after it.
        """
        last = False
        while not last:
            batch: list[tuple[str, str]] = []
            item = self._acks.get()
            deadline = time.monotonic() + self.ack_linger
            while True:
                if item is None:
                    last = True
                else:
                    batch.append(item)
                if last or len(batch) == 10:
                    break
                try:
                    item = self._acks.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue_module.Empty:
                    break
            if batch:
                self._delete_batch(batch)

    def _delete_batch(self, batch: list[tuple[str, str]]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": receipt} for i, (_, receipt) in enumerate(batch)]
        try:
            with suppress_instrumentation():
                result = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except Exception as err:
            log.warning(
                "deleting %d messages from %s failed (they will be redelivered): %s",
                len(batch),
                self.label,
                err,
            )
            return
        for failure in result.get("Failed", []):
            log.warning(
                "deleting message %s from %s failed (it will be redelivered): %s",
                batch[int(failure["Id"])][0],
                self.label,
                failure.get("Message", failure.get("Code")),
            )

    # --- heartbeat --------------------------------------------------------------------------------

    def heartbeat(self) -> None:
        """Extend visibility (and idempotency leases) of messages whose handlers are still running."""
        now = time.monotonic()
        due: list[tuple[str, _InFlight]] = []
        with self._in_flight_lock:
            for receipt, entry in self._in_flight.items():
                if entry.visible_until - now >= self.visibility / 2:
                    continue
                if now - entry.received_at + self.visibility > MAX_VISIBILITY_SECONDS:
                    continue  # SQS won't extend past 12 h from receipt; the message will be redelivered
                entry.visible_until = now + self.visibility
                due.append((receipt, entry))
        if not due:
            return
        self._change_visibility_batch([(e.message_id, receipt) for receipt, e in due], self.visibility)
        store = self.consumer.idempotency
        if store is not None:
            for key in [entry.key for _, entry in due if entry.key is not None]:
                self._quietly(f"extend {key}", functools.partial(store.extend, key, self.visibility))

    def _change_visibility_batch(self, items: list[tuple[str, str]], seconds: int) -> None:
        for start in range(0, len(items), 10):
            chunk = items[start : start + 10]
            entries = [
                {"Id": str(i), "ReceiptHandle": receipt, "VisibilityTimeout": seconds}
                for i, (_, receipt) in enumerate(chunk)
            ]
            try:
                with suppress_instrumentation():
                    result = self.sqs.change_message_visibility_batch(
                        QueueUrl=self.queue_url, Entries=entries
                    )
            except Exception as err:
                log.warning(
                    "changing visibility of %d messages on %s failed: %s", len(chunk), self.label, err
                )
                continue
            for failure in result.get("Failed", []):
                log.warning(
                    "changing visibility of message %s on %s failed: %s",
                    chunk[int(failure["Id"])][0],
                    self.label,
                    failure.get("Message", failure.get("Code")),
                )

    def check_queue(self) -> None:
        """Readiness: the queue answers (and the poller is running)."""
        if not self._poller.is_alive() and not self.stopping.is_set():
            raise RuntimeError(f"poller for {self.label} is not running")
        with suppress_instrumentation():
            self.sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
            )


class ConsumerRunner:
    """Runs one or more :class:`Consumer` in threads of this process.

    ``start()`` resolves the queues (failing fast on a missing one) and begins polling; ``stop()``
    (from a signal handler, say) stops polling; ``wait()`` returns once in-flight handlers have
    finished and their deletes are sent. ``poll_grace`` is how long ``wait`` gives a poller stuck
    in a long poll before leaving it (its late messages are returned to the queue at once).
    ``ack_linger`` is how long a delete waits for others to share its batch call; ``fill_linger``
    how long the poller waits for more free workers before a receive, so batches stay full under
    load.
    """

    def __init__(
        self,
        consumers: Iterable[Consumer],
        sqs: Any,
        *,
        service: str = "",
        metrics: ConsumerMetrics | None = None,
        tracer: trace.Tracer | None = None,
        heartbeat_interval: float | None = None,
        cleanup_interval: float = 300.0,
        ack_linger: float = 0.05,
        fill_linger: float = 0.02,
        poll_grace: float = 1.0,
    ) -> None:
        self.consumers: Sequence[Consumer] = list(consumers)
        if not self.consumers:
            raise ValueError("no consumers to run")
        self.metrics = metrics or ConsumerMetrics(CollectorRegistry(), service)
        self.stopping = threading.Event()
        self._stopped = threading.Event()
        self._loops = [
            _QueueLoop(
                c,
                sqs,
                metrics=self.metrics,
                tracer=tracer or trace.get_tracer("flotilla.messaging"),
                stopping=self.stopping,
                ack_linger=ack_linger,
                fill_linger=fill_linger,
            )
            for c in self.consumers
        ]
        self._heartbeat_interval = heartbeat_interval
        self._cleanup_interval = cleanup_interval
        self._poll_grace = poll_grace
        self._heart = threading.Thread(target=self._beat, name="consumer-heartbeat", daemon=True)

    def start(self) -> None:
        for loop in self._loops:
            loop.resolve()
        for loop in self._loops:
            loop.start()
        self._heart.start()
        log.info(
            "consuming %s", ", ".join(f"{loop.label} (visibility {loop.visibility}s)" for loop in self._loops)
        )

    def stop(self) -> None:
        """Stop polling; safe to call from a signal handler and more than once."""
        self.stopping.set()

    def wait(self) -> None:
        """Block until stopped and drained: every in-flight handler finished, its delete sent."""
        self.stopping.wait()
        for loop in self._loops:
            loop.drain(self._poll_grace)
        self._stopped.set()
        self._heart.join(timeout=5)
        log.info("consumer stopped")

    @property
    def pollers_alive(self) -> bool:
        return all(loop.poller_alive for loop in self._loops)

    def readiness_checks(self) -> dict[str, Callable[[], None]]:
        """One check per queue, named ``sqs:<queue>``, for ``Health.add_check``."""
        return {f"sqs:{loop.label}": loop.check_queue for loop in self._loops}

    def _beat(self) -> None:
        interval = self._heartbeat_interval or max(0.5, min(loop.visibility for loop in self._loops) / 4)
        next_cleanup = time.monotonic() + self._cleanup_interval
        while not self._stopped.wait(interval):
            for loop in self._loops:
                try:
                    loop.heartbeat()
                except Exception:
                    log.exception("heartbeat for %s failed", loop.label)
            if time.monotonic() >= next_cleanup:
                next_cleanup = time.monotonic() + self._cleanup_interval
                self._cleanup()

    def _cleanup(self) -> None:
        stores = {id(c.idempotency): c.idempotency for c in self.consumers if c.idempotency is not None}
        for store in stores.values():
            try:
                removed = store.cleanup()
                if removed:
                    log.info("removed %d expired idempotency markers", removed)
            except Exception as err:
                log.warning("idempotency cleanup failed: %s", err)


__all__ = [
    "MAX_VISIBILITY_SECONDS",
    "REDELIVERY_BACKOFF",
    "Backoff",
    "Consumer",
    "ConsumerMetrics",
    "ConsumerRunner",
    "Handler",
]
