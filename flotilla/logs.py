"""JSON logs on stdout: one object per line, with request and trace ids, secrets scrubbed."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from typing import Any

import orjson

from flotilla.context import request_id_var

try:  # tracing is optional: logs work without the OpenTelemetry SDK configured
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover
    _otel_trace = None  # type: ignore[assignment]

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)))
_HEADER_SECRETS = re.compile(
    r"(?i)\b(authorization|proxy-authorization|cookie|set-cookie|x-api-key)(['\"]?\s*[:=]\s*['\"]?)"
    r"((?:bearer|basic|digest|negotiate)\s+)?[^\s'\",;]+(?:;\s*[^\s'\",;]+)*"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_HINT = re.compile(r"(?i)authorization|cookie|api-key|bearer|basic")


class Redactor:
    """Scrubs credentials from text: known secret values plus header-shaped and bearer patterns.

    Secret values come from settings at start-up, so a setting typed ``SecretStr`` can't leak even
    if a library logs it verbatim. A cheap keyword test runs first, so ordinary lines (nearly all of
    them) never pay for the patterns.
    """

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, *values: str) -> None:
        with self._lock:
            self._secrets = tuple(
                sorted(set(self._secrets) | {v for v in values if v}, key=len, reverse=True)
            )

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        if _HINT.search(text):
            text = _HEADER_SECRETS.sub(r"\1\2[redacted]", text)
            text = _BEARER.sub(r"\1 [redacted]", text)
        return text


redactor = Redactor()


class JsonFormatter(logging.Formatter):
    """Formats any record, ours or a library's, as a single JSON line.

    Fields passed with ``extra={...}`` land at the top level (access lines use that for method,
    route, status, duration_ms and bytes). Free text (the message, an exception) is redacted;
    structured extras are the caller's responsibility.
    """

    def __init__(self, service: str, redact: Redactor = redactor) -> None:
        super().__init__()
        self.service = service
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "timestamp": _iso(record.created),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
            "request_id": request_id_var.get(),
            "trace_id": None,
            "span_id": None,
        }
        if _otel_trace is not None:
            ctx = _otel_trace.get_current_span().get_span_context()
            if ctx.is_valid:
                doc["trace_id"] = format(ctx.trace_id, "032x")
                doc["span_id"] = format(ctx.span_id, "016x")
        fields = record.__dict__
        for key in fields.keys() - _STANDARD:  # the extras: a set difference in C, not a loop here
            if key not in doc and key[0] != "_":
                doc[key] = fields[key]
        if record.exc_info:
            doc["exception"] = self.redact(self.formatException(record.exc_info))
        return orjson.dumps(doc, default=str).decode()


# The last second formatted and its text, swapped as one tuple so threads never see a torn pair:
# strftime runs once a second instead of once a line.
_second: tuple[int, str] = (-1, "")


def _iso(created: float) -> str:
    global _second  # noqa: PLW0603 - a one-entry cache
    seconds = int(created)
    cached = _second
    if cached[0] != seconds:
        cached = _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{cached[1]}.{int((created - seconds) * 1000):03d}Z"


QUIET_LIBRARIES = {
    "botocore": "WARNING",
    "boto3": "WARNING",
    "urllib3": "WARNING",
    # httpx logs every request at INFO: the chassis client already records each call (span, metrics).
    "httpx": "WARNING",
    "httpcore": "WARNING",
    "werkzeug": "INFO",
}


def configure_logging(service: str, level: str = "INFO") -> logging.Handler:
    """Send every logger (app, gunicorn, werkzeug, botocore) to stdout as JSON.

    Idempotent: calling it again (each gunicorn worker does) replaces the handler instead of
    doubling every line.
    """
    # The logging HOWTO's optimisations: our lines carry no caller, thread or process fields, so
    # don't compute them for every record (the caller lookup walks the stack).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    handler.set_name("flotilla-json")
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == "flotilla-json":
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Library loggers that bring their own handlers go through ours instead, once.
    for name in ("gunicorn.error", "werkzeug"):
        lib = logging.getLogger(name)
        lib.handlers.clear()
        lib.propagate = True
    for name, lib_level in QUIET_LIBRARIES.items():
        logging.getLogger(name).setLevel(lib_level)
    return handler
