"""Publish CloudEvents to SNS topics and EventBridge buses, with producer spans and bounded retries.

Both publishers take a boto3 client (``flotilla.aws.client("sns", platform)``) and a destination,
and send the envelope from ``flotilla.messaging.envelope`` as the message body (SNS) or the event
``detail`` (EventBridge), so consumers read every path with ``parse_body``.

Whole-call failures (throttling, 5xx, connection errors) are retried by botocore's ``standard``
retry mode. EventBridge adds a failure mode botocore cannot see: ``PutEvents`` answers 200 with some
entries failed. ``EventBridgePublisher`` retries just those entries with exponential backoff and
full jitter (``flotilla.backoff``), then raises ``PublishError`` naming what never got through.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, TracerProvider

from flotilla.backoff import Backoff
from flotilla.messaging.envelope import CloudEvent, extract_context, to_json, with_trace

_INSTRUMENTATION = "flotilla.messaging"
# What SNS filter policies can match on. Kept to three so the botocore instrumentation, which adds
# its propagator's fields (up to four with X-Ray, W3C and baggage), stays under SNS's limit of 10.
FILTER_ATTRIBUTES = ("type", "source", "subject")

# EventBridge PutEvents limits: 10 entries and 256 KiB per request.
EVENTBRIDGE_BATCH = 10
EVENTBRIDGE_MAX_BYTES = 256 * 1024
# Room kept for the traceparent/tracestate a publish adds to an event created without them
# (the W3C limits: 55 characters of traceparent, 512 of tracestate, plus their JSON keys).
TRACE_HEADROOM_BYTES = 600
# Entry error codes that a retry cannot fix.
_PERMANENT = frozenset({"ValidationException", "MalformedDetail", "AccessDeniedException", "InvalidArgument"})


class PublishError(RuntimeError):
    """Some events were not published; ``failed`` pairs each with the error AWS gave for it."""

    def __init__(self, message: str, failed: Sequence[tuple[CloudEvent, str]]) -> None:
        super().__init__(message)
        self.failed = list(failed)


def _tracer(provider: TracerProvider | None) -> trace.Tracer:
    return trace.get_tracer(_INSTRUMENTATION, tracer_provider=provider)


def _has_current_span() -> bool:
    return trace.get_current_span().get_span_context().is_valid


class SnsPublisher:
    """Publishes events to one SNS topic, with filterable message attributes.

    For a FIFO topic (ARN ending in ``.fifo``) the group id comes from ``group_id(event)``, by
    default the event's ``subject`` (events about one order stay in order) or, lacking one, its
    ``type``; the deduplication id is the event id, so publishing the same event twice within
    SNS's five-minute window delivers it once.
    """

    def __init__(
        self,
        client: Any,
        topic_arn: str,
        *,
        group_id: Callable[[CloudEvent], str] | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._client = client
        self.topic_arn = topic_arn
        self.topic_name = topic_arn.rsplit(":", 1)[-1]
        self.fifo = topic_arn.endswith(".fifo")
        self._group_id = group_id or (lambda event: event.subject or event.type)
        self._tracer = _tracer(tracer_provider)

    def publish(self, event: CloudEvent) -> str:
        """Publish ``event``; returns SNS's message id.

        The producer span is a child of the current span; with none (an outbox relay), it
        continues the trace the event was created in, so the publish shows up in that trace.
        """
        parent = None if _has_current_span() else extract_context(event)
        with self._tracer.start_as_current_span(
            f"publish {self.topic_name}",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "aws_sns",
                "messaging.operation.type": "send",
                "messaging.operation.name": "publish",
                "messaging.destination.name": self.topic_name,
                "messaging.message.id": event.id,
                "cloudevents.event_id": event.id,
                "cloudevents.event_type": event.type,
                "cloudevents.event_source": event.source,
            },
        ):
            event = with_trace(event)
            request: dict[str, Any] = {
                "TopicArn": self.topic_arn,
                "Message": to_json(event),
                "MessageAttributes": message_attributes(event),
            }
            if self.fifo:
                request["MessageGroupId"] = self._group_id(event)
                request["MessageDeduplicationId"] = event.id
            answer = self._client.publish(**request)
        return str(answer["MessageId"])


def message_attributes(event: CloudEvent) -> dict[str, dict[str, str]]:
    """SNS message attributes for filter policies: ``type``, ``source`` and, when set, ``subject``."""
    values = {"type": event.type, "source": event.source, "subject": event.subject}
    return {
        name: {"DataType": "String", "StringValue": value}
        for name in FILTER_ATTRIBUTES
        if (value := values[name])
    }


class EventBridgePublisher:
    """Puts events on one EventBridge bus (``source``, ``type`` and the envelope as ``Detail``).

    Rules then match on ``source`` / ``detail-type`` as usual, and the target queue receives the
    EventBridge event with the full CloudEvent in ``detail``. Failed entries are sent again, up to
    ``max_attempts`` requests in all; resend ``n`` (from 1) waits ``jitter()`` (a float in [0, 1))
    times ``min(max_delay, base_delay * 2**n)``.
    """

    def __init__(
        self,
        client: Any,
        bus: str = "default",
        *,
        max_attempts: int = 4,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._client = client
        self.bus = bus
        self.bus_name = bus.rsplit("/", 1)[-1]
        self._max_attempts = max_attempts
        self._backoff = Backoff(base_delay, max_delay, rng=jitter)
        self._sleep = sleep
        self._tracer = _tracer(tracer_provider)

    def publish(self, event: CloudEvent) -> None:
        """Put one event (the shape the outbox relay calls); ``PublishError`` if it never got in."""
        self.publish_batch([event])

    def publish_batch(self, events: Iterable[CloudEvent]) -> None:
        """Put every event, in requests of at most 10 entries and 256 KiB; ``PublishError`` if any fail."""
        failed: list[tuple[CloudEvent, str]] = []
        for batch in self._batches(list(events)):
            failed += self._put_batch(batch)
        if failed:
            codes = sorted({error.split(":", 1)[0] for _, error in failed})
            raise PublishError(
                f"{len(failed)} event(s) not put on bus {self.bus_name}: {', '.join(codes)}", failed
            )

    def _entry(self, event: CloudEvent) -> dict[str, Any]:
        return {
            "Source": event.source,
            "DetailType": event.type,
            "Detail": to_json(event),
            "EventBusName": self.bus,
            "Time": event.time,
        }

    def _batches(self, events: list[CloudEvent]) -> Iterator[list[CloudEvent]]:
        batch: list[CloudEvent] = []
        size = 0
        for event in events:
            # An event without trace fields gets them stamped at publish time (with_trace in
            # _put_batch), after this check: leave room for them.
            entry_size = _entry_size(self._entry(event)) + (0 if event.traceparent else TRACE_HEADROOM_BYTES)
            if entry_size > EVENTBRIDGE_MAX_BYTES:
                raise PublishError(
                    f"event {event.id} is {entry_size} bytes, over the EventBridge entry limit",
                    [(event, "EntryTooLarge")],
                )
            if batch and (len(batch) == EVENTBRIDGE_BATCH or size + entry_size > EVENTBRIDGE_MAX_BYTES):
                yield batch
                batch, size = [], 0
            batch.append(event)
            size += entry_size
        if batch:
            yield batch

    def _put_batch(self, events: list[CloudEvent]) -> list[tuple[CloudEvent, str]]:
        current = _has_current_span()
        links = [] if current else [_link(event) for event in events if event.traceparent]
        parent = extract_context(events[0]) if not current and len(events) == 1 else None
        with self._tracer.start_as_current_span(
            f"publish {self.bus_name}",
            context=parent,
            kind=SpanKind.PRODUCER,
            links=[link for link in links if link is not None] if parent is None else None,
            attributes={
                "messaging.system": "aws_eventbridge",
                "messaging.operation.type": "send",
                "messaging.operation.name": "put_events",
                "messaging.destination.name": self.bus_name,
                "messaging.batch.message_count": len(events),
            },
        ) as span:
            stamped = [with_trace(event) for event in events]
            # Serialised once: a retry sends the same entries again.
            pending = list(zip(stamped, [self._entry(event) for event in stamped], strict=True))
            failures: list[tuple[CloudEvent, str]] = []
            last_error: dict[str, str] = {}
            for attempt in range(self._max_attempts):
                if attempt:
                    self._sleep(self._backoff.delay(attempt))
                answer = self._client.put_events(Entries=[entry for _, entry in pending])
                retry: list[tuple[CloudEvent, dict[str, Any]]] = []
                for (event, entry), result in zip(pending, answer.get("Entries", []), strict=True):
                    code = result.get("ErrorCode")
                    if not code:
                        continue
                    error = f"{code}: {result.get('ErrorMessage', '')}"
                    if code in _PERMANENT:
                        failures.append((event, error))
                    else:
                        retry.append((event, entry))
                        last_error[event.id] = error
                if answer.get("FailedEntryCount"):
                    span.add_event(
                        "entries failed", {"failed": answer["FailedEntryCount"], "attempt": attempt + 1}
                    )
                pending = retry
                if not pending:
                    break
            failures += [(event, last_error[event.id]) for event, _ in pending]
            if failures:
                span.set_status(trace.StatusCode.ERROR, f"{len(failures)} entries not put")
            return failures


def _link(event: CloudEvent) -> Link | None:
    context = trace.get_current_span(extract_context(event)).get_span_context()
    return Link(context) if context.is_valid else None


def _entry_size(entry: Mapping[str, Any]) -> int:
    """PutEvents entry size as AWS counts it: 14 bytes for Time plus the UTF-8 text fields."""
    text = (entry["Source"], entry["DetailType"], entry["Detail"], *entry.get("Resources", ()))
    return 14 + sum(len(value.encode("utf-8")) for value in text)


__all__ = [
    "EVENTBRIDGE_BATCH",
    "FILTER_ATTRIBUTES",
    "EventBridgePublisher",
    "PublishError",
    "SnsPublisher",
    "message_attributes",
]
