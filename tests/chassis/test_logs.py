"""JSON logs: fields, request ids, library loggers, and credentials that never appear."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

from flotilla.context import accept_request_id
from flotilla.logs import JsonFormatter, Redactor, configure_logging

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
FIELDS = {"timestamp", "level", "service", "logger", "message", "request_id", "trace_id", "span_id"}


def test_access_line_has_every_field(client: Any, logs: Any) -> None:
    response = client.get("/hello/ann", headers={"traceparent": TRACEPARENT, "X-Request-Id": "req-42"})
    (line,) = logs.where(logger="flotilla.access")
    assert line.keys() >= FIELDS
    assert line["service"] == "sample"
    assert line["request_id"] == "req-42"
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert len(line["span_id"]) == 16
    assert (line["method"], line["route"], line["status"]) == ("GET", "/hello/<name>", 200)
    assert line["bytes"] == len(response.data)
    assert line["duration_ms"] >= 0
    assert line["timestamp"].endswith("Z")


def test_request_id_is_kept_when_well_formed_and_replaced_otherwise(client: Any) -> None:
    kept = client.get("/ping", headers={"X-Request-Id": "abc-123"})
    assert kept.headers["X-Request-Id"] == "abc-123"
    forged = client.get("/ping", headers={"X-Request-Id": 'evil" level=ERROR'})
    assert forged.headers["X-Request-Id"] != 'evil" level=ERROR'
    assert len(forged.headers["X-Request-Id"]) == 32
    minted = client.get("/ping")
    assert len(minted.headers["X-Request-Id"]) == 32


def test_accept_request_id_bounds() -> None:
    assert accept_request_id("a" * 128) == "a" * 128
    assert accept_request_id("a" * 129) != "a" * 129
    assert accept_request_id("") != ""
    assert accept_request_id("has space") != "has space"


def test_health_and_metrics_are_not_access_logged(client: Any, logs: Any) -> None:
    client.get("/livez")
    client.get("/readyz")
    client.get("/metrics")
    assert logs.where(logger="flotilla.access") == []


def test_secret_settings_and_credentials_never_appear(client: Any, logs: Any) -> None:
    # The app fixture's settings hold api_token="s3cr3t-token-value"; a careless log line has it,
    # plus headers a library might dump.
    logging.getLogger("some.library").warning(
        "calling with token s3cr3t-token-value and headers {'Authorization': 'Bearer abc.def.ghi123', "
        "'Cookie': 'session=xyz789'}"
    )
    client.get("/ping", headers={"Authorization": "Bearer abc.def.ghi123", "Cookie": "session=xyz789"})
    text = json.dumps(logs.lines)
    assert "s3cr3t-token-value" not in text
    assert "abc.def.ghi123" not in text
    assert "xyz789" not in text
    assert "[redacted]" in text


def test_redactor_patterns() -> None:
    redact = Redactor()
    redact.add("pa55word-long")
    assert redact("db password is pa55word-long") == "db password is [redacted]"
    assert redact("Authorization: Basic dXNlcjpwYXNz") == "Authorization: [redacted]"
    assert redact('"x-api-key": "k-123456"') == '"x-api-key": "[redacted]"'
    assert redact("nothing to hide") == "nothing to hide"


def test_library_logs_are_json_with_the_service_name() -> None:
    stream = io.StringIO()
    handler = configure_logging("orders", "INFO")
    handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        logging.getLogger("botocore.credentials").warning("found credentials in environment")
        logging.getLogger("gunicorn.error").info("Booting worker")
        logging.getLogger("botocore.hooks").debug("chatty")  # below botocore's WARNING
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["logger"], line["service"]) for line in lines] == [
        ("botocore.credentials", "orders"),
        ("gunicorn.error", "orders"),
    ]


def test_exception_is_logged_with_trace_but_formatter_survives_odd_extras() -> None:
    formatter = JsonFormatter("svc")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("job",), sys.exc_info())
    record.weird = object()
    doc = json.loads(formatter.format(record))
    assert doc["message"] == "failed job"
    assert "ValueError: boom" in doc["exception"]
    assert "weird" in doc
