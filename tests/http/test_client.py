"""ServiceClient against a real server on loopback; time is a manual clock, so backoff never sleeps."""

from __future__ import annotations

import threading
import uuid

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import format_trace_id

from flotilla import create_app
from flotilla.config import PlatformSettings
from flotilla.context import request_id_var
from flotilla.http import (
    DEADLINE_HEADER,
    BulkheadFullError,
    CircuitOpenError,
    DeadlineExceeded,
    State,
    UpstreamConnectError,
    UpstreamTimeout,
    deadline_scope,
)


def key() -> str:
    return uuid.uuid4().hex


def sample(client, name, **labels):
    value = client.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def test_retries_503_with_exponential_backoff_then_succeeds(upstream, make_client, clock):
    client = make_client({"retries": {"attempts": 3, "backoffBaseSeconds": 0.1}})
    k = key()
    upstream.script(k, [503, 502, 200])
    response = client.get("svc", f"/script/{k}")
    assert response.status_code == 200
    assert upstream.hits(k) == 3
    assert clock.sleeps == pytest.approx([0.1, 0.2])
    assert sample(client, "http_client_retries_total", upstream="svc", reason="503") == 1
    assert sample(client, "http_client_requests_total", upstream="svc", method="GET", outcome="2xx") == 1


def test_attempts_bound_the_retries_and_the_last_answer_is_returned(upstream, make_client):
    client = make_client({"retries": {"attempts": 2}})
    k = key()
    upstream.script(k, [503] * 5)
    assert client.get("svc", f"/script/{k}").status_code == 503
    assert upstream.hits(k) == 3


def test_retry_after_is_honoured(upstream, make_client, clock):
    client = make_client()
    k = key()
    upstream.script(k, [(429, {"Retry-After": "2"}), 200])
    assert client.get("svc", f"/script/{k}").status_code == 200
    assert clock.sleeps == [2.0]


def test_a_retry_after_longer_than_allowed_is_not_waited_for(upstream, make_client, clock):
    client = make_client({"retries": {"maxRetryAfterSeconds": 5}})
    k = key()
    upstream.script(k, [(503, {"Retry-After": "60"}), 200])
    assert client.get("svc", f"/script/{k}").status_code == 503
    assert upstream.hits(k) == 1 and clock.sleeps == []


def test_a_retry_after_beyond_the_deadline_is_not_waited_for(upstream, make_client, clock):
    client = make_client({"timeoutSeconds": 1})
    k = key()
    upstream.script(k, [(503, {"Retry-After": "3"}), 200])
    assert client.get("svc", f"/script/{k}").status_code == 503
    assert upstream.hits(k) == 1


def test_post_is_not_retried_without_an_idempotency_key(upstream, make_client):
    client = make_client()
    k = key()
    upstream.script(k, [503, 200])
    assert client.post("svc", f"/script/{k}", json={"n": 1}).status_code == 503
    assert upstream.hits(k) == 1


def test_post_with_an_idempotency_key_is_retried(upstream, make_client):
    client = make_client()
    k = key()
    upstream.script(k, [503, 200])
    response = client.post("svc", f"/script/{k}", json={"n": 1}, headers={"Idempotency-Key": k})
    assert response.status_code == 200
    assert upstream.hits(k) == 2


def test_500_is_never_retried(upstream, make_client):
    client = make_client()
    k = key()
    upstream.script(k, [500, 200])
    assert client.get("svc", f"/script/{k}").status_code == 500
    assert upstream.hits(k) == 1


def test_with_the_mesh_retrying_the_client_does_not(upstream, make_client):
    client = make_client(retries=False)
    k = key()
    upstream.script(k, [503, 200])
    assert client.get("svc", f"/script/{k}").status_code == 503
    assert upstream.hits(k) == 1


def test_connect_failures_are_retried_then_raise_a_typed_error(make_client, clock):
    client = make_client({"retries": {"attempts": 2}})
    with pytest.raises(UpstreamConnectError) as caught:
        client.get("down", "/anything")
    assert len(clock.sleeps) == 2
    assert caught.value.status == 502
    assert (
        sample(client, "http_client_requests_total", upstream="down", method="GET", outcome="connect_error")
        == 1
    )


def test_the_retry_budget_caps_retries_across_calls(upstream, make_client):
    client = make_client({"retries": {"attempts": 3, "budget": {"ratio": 0, "minRetries": 1}}})
    k = key()
    upstream.script(k, [503] * 10)
    assert client.get("svc", f"/script/{k}").status_code == 503
    assert upstream.hits(k) == 2  # one retry, then the budget is spent
    assert client.get("svc", f"/script/{k}").status_code == 503
    assert upstream.hits(k) == 3
    assert sample(client, "http_client_retry_budget_exhausted_total", upstream="svc") == 2


def test_an_open_circuit_fails_fast_without_sending(upstream, make_client, clock):
    client = make_client(
        {"retries": {"attempts": 0}, "circuitBreaker": {"consecutiveFailures": 3, "openSeconds": 10}}
    )
    k = key()
    upstream.script(k, [503] * 3 + [200] * 3)
    for _ in range(3):
        assert client.get("svc", f"/script/{k}").status_code == 503
    with pytest.raises(CircuitOpenError) as caught:
        client.get("svc", f"/script/{k}")
    assert upstream.hits(k) == 3
    assert caught.value.retry_after == pytest.approx(10)
    assert client.circuit_state("svc") is State.OPEN
    assert sample(client, "http_client_circuit_state", upstream="svc") == 2
    assert (
        sample(client, "http_client_requests_total", upstream="svc", method="GET", outcome="circuit_open")
        == 1
    )
    clock.advance(10)
    assert client.get("svc", f"/script/{k}").status_code == 200  # a trial
    assert client.get("svc", f"/script/{k}").status_code == 200
    assert client.circuit_state("svc") is State.CLOSED


def test_an_upstream_that_is_down_gives_a_fast_typed_error_once_open(make_client):
    client = make_client({"retries": {"attempts": 0}, "circuitBreaker": {"consecutiveFailures": 2}})
    for _ in range(2):
        with pytest.raises(UpstreamConnectError):
            client.get("down", "/")
    with pytest.raises(CircuitOpenError):
        client.get("down", "/")


def test_a_retry_is_never_sent_through_an_open_circuit(upstream, make_client):
    client = make_client({"retries": {"attempts": 5}, "circuitBreaker": {"consecutiveFailures": 2}})
    k = key()
    upstream.script(k, [503] * 10)
    with pytest.raises(CircuitOpenError):
        client.get("svc", f"/script/{k}")
    assert upstream.hits(k) == 2


def test_the_bulkhead_rejects_a_call_beyond_its_limit(upstream, make_client):
    client = make_client({"bulkhead": {"maxConcurrent": 1}})
    k = key()
    results = []
    worker = threading.Thread(target=lambda: results.append(client.get("svc", f"/block/{k}").status_code))
    worker.start()
    assert upstream.entered[k].wait(10)
    with pytest.raises(BulkheadFullError) as caught:
        client.get("svc", "/headers")
    assert caught.value.status == 503
    upstream.release[k].set()
    worker.join(10)
    assert results == [200]
    assert client.get("svc", "/headers").status_code == 200


def test_a_slow_answer_times_out_per_try_and_is_not_retried(upstream, make_client, clock):
    client = make_client({"retries": {"attempts": 2, "perTryTimeoutSeconds": 0.2}})
    with pytest.raises(UpstreamTimeout) as caught:
        client.get("svc", "/sleep", params={"seconds": "2"})
    assert caught.value.status == 504
    assert clock.sleeps == []  # no backoff: a timeout is not retried


def test_request_id_trace_context_and_remaining_deadline_travel_downstream(make_client, clock):
    client = make_client({"timeoutSeconds": 5})
    tracer = TracerProvider().get_tracer("test")
    token = request_id_var.set("req-42")
    try:
        with tracer.start_as_current_span("caller") as span, deadline_scope(1.5, clock):
            seen = client.get("svc", "/headers").json()
    finally:
        request_id_var.reset(token)
    assert seen["X-Request-Id"] == "req-42"
    assert seen[DEADLINE_HEADER] == "1500"
    assert format_trace_id(span.get_span_context().trace_id) in seen["Traceparent"]


def test_without_an_incoming_deadline_the_policy_timeout_is_sent(make_client):
    seen = make_client({"timeoutSeconds": 2}).get("svc", "/headers").json()
    assert seen[DEADLINE_HEADER] == "2000"


def test_running_out_of_the_callers_deadline_is_not_held_against_the_upstream(make_client, clock):
    client = make_client({"circuitBreaker": {"consecutiveFailures": 1}})
    with deadline_scope(0.2, clock), pytest.raises(DeadlineExceeded) as caught:
        client.get("svc", "/sleep", params={"seconds": "2"})
    assert caught.value.status == 504
    assert client.circuit_state("svc") is State.CLOSED


def test_an_open_circuit_escaping_a_view_answers_503_with_retry_after(make_client, tmp_path):
    client = make_client(
        {"retries": {"attempts": 0}, "circuitBreaker": {"consecutiveFailures": 1, "openSeconds": 30}}
    )
    app = create_app(
        "edge", platform=PlatformSettings(trace_file=tmp_path / "traces.jsonl", access_log=False)
    )

    @app.get("/products")
    def products():
        return client.get("down", "/products").json()

    with pytest.raises(UpstreamConnectError):
        client.get("down", "/products")
    response = app.test_client().get("/products")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.get_json()["type"] == "urn:flotilla:problem:circuit-open"


def test_a_request_id_given_by_the_caller_is_not_duplicated(make_client):
    token = request_id_var.set("req-42")
    try:
        seen = make_client().get("svc", "/headers", headers={"x-request-id": "mine"}).json()
    finally:
        request_id_var.reset(token)
    assert seen["X-Request-Id"] == "mine"
