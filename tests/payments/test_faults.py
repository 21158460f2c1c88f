"""Fault injection from settings: latency on every provider call, a share of 503s (seeded: the same
sequence each run), both before anything is recorded, so retries with the same key are safe."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.payments.support import AUTHORIZATIONS, PROBLEM_JSON, body, key, orders, rows, with_key


def test_an_injected_error_is_a_503_that_records_nothing(
    make_app: Callable[..., Any], database_url: str
) -> None:
    failing = make_app(fault_error_rate=1.0).test_client()
    idempotency_key, sent = key(), body()
    answer = failing.post(AUTHORIZATIONS, json=sent, headers=with_key(orders(), idempotency_key))
    assert answer.status_code == 503
    assert answer.mimetype == PROBLEM_JSON
    assert (answer.json["type"], answer.json["reason"]) == (
        "urn:flotilla:problem:provider-unavailable",
        "provider_unavailable",
    )
    assert rows(database_url, "authorizations") == []
    assert rows(database_url, "idempotency_keys") == []
    # The provider is back: the same key goes through, as the first real attempt.
    healthy = make_app().test_client()
    retry = healthy.post(AUTHORIZATIONS, json=sent, headers=with_key(orders(), idempotency_key))
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers


@pytest.mark.parametrize("operation", ["capture", "void"])
def test_capture_and_void_fail_the_same_way_and_change_nothing(
    make_app: Callable[..., Any], database_url: str, operation: str
) -> None:
    created = make_app().test_client().post(AUTHORIZATIONS, json=body(), headers=with_key(orders(), key()))
    failing = make_app(fault_error_rate=1.0).test_client()
    answer = failing.post(f"{created.headers['Location']}/{operation}", headers=with_key(orders(), key()))
    assert answer.status_code == 503
    assert [r["status"] for r in rows(database_url, "authorizations")] == ["AUTHORIZED"]


def test_a_seeded_error_rate_fails_the_same_calls_every_run(make_app: Callable[..., Any]) -> None:
    client = make_app(fault_error_rate=0.5, fault_seed=7).test_client()
    statuses = [
        client.post(AUTHORIZATIONS, json=body(), headers=with_key(orders(), key())).status_code
        for _ in range(20)
    ]
    draws = random.Random(7)
    assert statuses == [503 if draws.random() < 0.5 else 201 for _ in range(20)]
    assert 0 < statuses.count(503) < 20


def test_injected_latency_delays_every_provider_call(make_app: Callable[..., Any]) -> None:
    client = make_app(fault_latency_ms=250).test_client()
    started = time.monotonic()
    created = client.post(AUTHORIZATIONS, json=body(), headers=with_key(orders(), key()))
    captured = client.post(f"{created.headers['Location']}/capture", headers=with_key(orders(), key()))
    assert (created.status_code, captured.status_code) == (201, 200)
    assert time.monotonic() - started >= 0.5


def test_latency_past_the_callers_deadline_is_504_and_records_nothing(
    make_app: Callable[..., Any], database_url: str
) -> None:
    client = make_app(fault_latency_ms=2000).test_client()
    started = time.monotonic()
    answer = client.post(
        AUTHORIZATIONS, json=body(), headers=with_key(orders(), key(), **{"X-Flotilla-Deadline-Ms": "200"})
    )
    assert answer.status_code == 504
    assert time.monotonic() - started < 2
    assert rows(database_url, "authorizations") == []
    assert rows(database_url, "idempotency_keys") == []


def test_a_deadline_already_passed_is_504_before_anything(
    make_app: Callable[..., Any], database_url: str
) -> None:
    client = make_app().test_client()
    answer = client.post(
        AUTHORIZATIONS, json=body(), headers=with_key(orders(), key(), **{"X-Flotilla-Deadline-Ms": "0"})
    )
    assert answer.status_code == 504
    assert rows(database_url, "idempotency_keys") == []
