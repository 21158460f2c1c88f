"""CloudEvents 1.0 envelope (JSON, structured mode) carrying W3C trace context across SNS, SQS, EventBridge.

Every event a Flotilla service emits is one JSON object with the CloudEvents context attributes
(``specversion``, ``id``, ``source``, ``type``, ``time``, ``subject``, ``datacontenttype``) and its
``data``. The trace context rides *inside* the envelope as the CloudEvents distributed-tracing
extension (``traceparent``/``tracestate``) rather than only in transport headers, because the
transports disagree: SNS and SQS carry message attributes (and the botocore instrumentation gives up
past ten of them), EventBridge carries none. An envelope survives all three unchanged.

Incoming bodies come in three wrappings, all handled by :func:`parse_body`:

- the envelope itself (SNS with raw message delivery, or a direct ``SendMessage``);
- an SNS notification whose ``Message`` is the envelope (raw delivery off);
- an EventBridge event whose ``detail`` is the envelope (a rule targeting a queue).

Everything here is pure: no AWS calls, no global state besides reading the current OpenTelemetry
context when an event is created.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

SPEC_VERSION = "1.0"
JSON_CONTENT_TYPE = "application/json"

# CloudEvents 1.0: extension names are lower-case ASCII letters and digits (at most 20 recommended).
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

# The W3C propagator alone: the envelope's extension is W3C by definition, whatever mix of
# propagators (X-Ray, baggage) the process uses for HTTP.
_W3C = TraceContextTextMapPropagator()


class InvalidEnvelope(ValueError):
    """A body is not a CloudEvent we can read; ``str(err)`` is one line saying what is wrong and where."""


class CloudEvent(BaseModel):
    """One CloudEvents 1.0 event, with the distributed-tracing extension as first-class fields.

    Extension attributes other than ``traceparent``/``tracestate`` are kept (``extra="allow"``) so
    an event read and re-published loses nothing. Instances are immutable: build a new one with
    ``model_copy(update=...)``.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1)
    source: str = Field(min_length=1, description="URI-reference naming the producer, e.g. flotilla.orders.")
    type: str = Field(min_length=1, description="What happened, e.g. order.placed; filters match it.")
    time: datetime = Field(default_factory=lambda: datetime.now(UTC), validate_default=True)
    subject: str | None = Field(None, description="The thing the event is about, e.g. an order id.")
    datacontenttype: str | None = JSON_CONTENT_TYPE
    dataschema: str | None = None
    data: Any = None
    data_base64: str | None = Field(None, description="Binary data, base64; exclusive with data.")
    traceparent: str | None = Field(None, description="W3C traceparent of the span that created the event.")
    tracestate: str | None = None

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # A naive time would be ambiguous once it crosses a region: take it as UTC. Milliseconds are
        # what goes on the wire, so keep only those and an event equals itself after a round trip.
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)

    @field_validator("traceparent")
    @classmethod
    def _traceparent_shape(cls, value: str | None) -> str | None:
        if value is not None and not _TRACEPARENT.match(value):
            raise ValueError("traceparent is not a W3C trace context header (version-traceid-spanid-flags)")
        return value

    @model_validator(mode="after")
    def _one_data_and_valid_extensions(self) -> CloudEvent:
        if self.data is not None and self.data_base64 is not None:
            raise ValueError("data and data_base64 are mutually exclusive")
        for name in self.model_extra or {}:
            if not _EXTENSION_NAME.match(name):
                raise ValueError(f"extension attribute {name!r} must be 1-20 lower-case letters or digits")
        return self

    @field_serializer("time")
    def _rfc3339(self, value: datetime) -> str:
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    @property
    def extensions(self) -> dict[str, Any]:
        """Extension attributes other than the tracing ones, as read or given."""
        return dict(self.model_extra or {})

    @property
    def trace_id(self) -> str | None:
        """The 32-hex trace id from ``traceparent``: what logs and tests compare across hops."""
        return self.traceparent.split("-")[1] if self.traceparent else None

    def binary_data(self) -> bytes | None:
        """``data_base64`` decoded, for events that carry bytes rather than JSON."""
        return base64.b64decode(self.data_base64) if self.data_base64 is not None else None


def new_event(
    type: str,
    data: Any = None,
    *,
    source: str,
    subject: str | None = None,
    id: str | None = None,
    time: datetime | None = None,
    extensions: Mapping[str, Any] | None = None,
    context: otel_context.Context | None = None,
) -> CloudEvent:
    """An event stamped with the trace context current *now*, where the thing happened.

    Capturing at creation (not at publish) matters for the outbox: the relay publishes later, from
    another process, yet the consumer's span must still join the request that caused the event.
    ``bytes`` data is carried as ``data_base64`` with ``application/octet-stream``.
    """
    fields: dict[str, Any] = {"type": type, "source": source, "subject": subject, **(extensions or {})}
    if id is not None:
        fields["id"] = id
    if time is not None:
        fields["time"] = time
    if isinstance(data, bytes | bytearray):
        fields["data_base64"] = base64.b64encode(bytes(data)).decode("ascii")
        fields["datacontenttype"] = "application/octet-stream"
    else:
        fields["data"] = data
    fields.update(trace_fields(context))
    try:
        return CloudEvent(**fields)
    except ValidationError as err:
        raise InvalidEnvelope(_one_line(err)) from None


def trace_fields(context: otel_context.Context | None = None) -> dict[str, str]:
    """``traceparent``/``tracestate`` of the given (or current) context; empty without a span."""
    if not trace.get_current_span(context).get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=context)
    return {key: carrier[key] for key in ("traceparent", "tracestate") if carrier.get(key)}


def with_trace(event: CloudEvent, context: otel_context.Context | None = None) -> CloudEvent:
    """The event stamped with ``context``'s trace if it has none yet; otherwise the event unchanged."""
    if event.traceparent:
        return event
    fields = trace_fields(context)
    return event.model_copy(update=fields) if fields else event


def extract_context(event: CloudEvent) -> otel_context.Context:
    """An OpenTelemetry context whose remote parent is the span that created ``event``.

    Start the consumer span with ``context=extract_context(event)`` (or add a link to it for batch
    handling) and the trace continues from the producer. Without ``traceparent`` the result is an
    empty context, so the consumer starts a new trace rather than joining an unrelated one.
    """
    carrier = {key: value for key in ("traceparent", "tracestate") if (value := getattr(event, key))}
    return _W3C.extract(carrier, context=otel_context.Context())


def to_dict(event: CloudEvent) -> dict[str, Any]:
    """The event as a JSON-ready dict (structured mode), unset optional attributes left out."""
    doc = event.model_dump(mode="json", exclude_none=True)
    if event.data is None and event.data_base64 is None:
        doc.pop("datacontenttype", None)
    return doc


def to_json(event: CloudEvent) -> str:
    """The event as the JSON text a transport carries (compact: SNS and EventBridge bill by size)."""
    return json.dumps(to_dict(event), separators=(",", ":"), ensure_ascii=False)


def from_dict(doc: Mapping[str, Any]) -> CloudEvent:
    """Validate a structured-mode envelope already decoded from JSON."""
    if doc.get("specversion") != SPEC_VERSION:
        got = doc.get("specversion")
        raise InvalidEnvelope(
            "not a CloudEvents 1.0 envelope: specversion is missing"
            if got is None
            else f"unsupported CloudEvents specversion {got!r} (expected '1.0')"
        )
    try:
        return CloudEvent.model_validate(dict(doc))
    except ValidationError as err:
        raise InvalidEnvelope(_one_line(err)) from None


DeliveryKind = Literal["raw", "sns", "eventbridge"]


def unwrap(body: str | bytes | Mapping[str, Any]) -> tuple[DeliveryKind, dict[str, Any]]:
    """Which wrapping a queue body came in, and the envelope dict inside it.

    Split from :func:`parse_body` for consumers that want to log or count by delivery path.
    """
    doc = _decode(body, "message body")
    if "specversion" in doc:
        return "raw", doc
    if doc.get("Type") == "Notification" and "TopicArn" in doc:
        message = doc.get("Message")
        if not isinstance(message, str):
            raise InvalidEnvelope("SNS notification has no Message string")
        return "sns", _decode(message, "SNS Message")
    if "detail-type" in doc and "detail" in doc:
        detail = doc["detail"]
        if not isinstance(detail, dict):
            raise InvalidEnvelope("EventBridge event detail is not a JSON object")
        return "eventbridge", detail
    raise InvalidEnvelope(
        "body is neither a CloudEvent, an SNS notification nor an EventBridge event "
        f"(top-level keys: {', '.join(sorted(doc)[:8]) or 'none'})"
    )


def parse_body(body: str | bytes | Mapping[str, Any]) -> CloudEvent:
    """The CloudEvent in an SQS message body, however it was delivered (raw, via SNS, via EventBridge)."""
    _, doc = unwrap(body)
    return from_dict(doc)


def _decode(body: str | bytes | Mapping[str, Any], what: str) -> dict[str, Any]:
    if isinstance(body, Mapping):
        return dict(body)
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidEnvelope(f"{what} is not JSON: {err}") from None
    if not isinstance(doc, dict):
        raise InvalidEnvelope(f"{what} is JSON but not an object (got {type(doc).__name__})")
    return doc


def _one_line(err: ValidationError) -> str:
    problems = []
    for item in err.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "envelope"
        problems.append(f"{where}: {item['msg']}")
    return "invalid CloudEvent: " + "; ".join(problems)


__all__ = [
    "JSON_CONTENT_TYPE",
    "SPEC_VERSION",
    "CloudEvent",
    "DeliveryKind",
    "InvalidEnvelope",
    "extract_context",
    "from_dict",
    "new_event",
    "parse_body",
    "to_dict",
    "to_json",
    "trace_fields",
    "unwrap",
    "with_trace",
]
