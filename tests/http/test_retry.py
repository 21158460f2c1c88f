"""Retry rules with an injected clock and random source: nothing here sleeps."""

from __future__ import annotations

import random

import pytest

import flotilla.backoff
from flotilla.clock import ManualClock
from flotilla.http.policy import RetryBudgetPolicy, RetryPolicy
from flotilla.http.retry import (
    Backoff,
    RetryBudget,
    backoff_for,
    may_retry,
    parse_retry_after,
    retry_condition,
)


def highest() -> float:
    """Jitter always at its ceiling: the ceiling becomes the delay."""
    return 1.0


def test_backoff_ceiling_doubles_per_retry_up_to_the_maximum():
    backoff = Backoff(base_seconds=0.1, max_seconds=1.0, rng=highest)
    assert [backoff.delay(n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_full_jitter_stays_between_zero_and_the_ceiling_and_spreads():
    backoff = Backoff(base_seconds=0.1, max_seconds=1.0, rng=random.Random(7).random)
    delays = [backoff.delay(3) for _ in range(200)]
    assert all(0.0 <= d <= 0.8 for d in delays)
    assert min(delays) < 0.2 and max(delays) > 0.6  # spread over the range, not clustered


def test_retry_after_is_a_floor_on_the_delay():
    backoff = Backoff(base_seconds=0.1, max_seconds=1.0, rng=highest)
    assert backoff.delay(0, retry_after=3.0) == 3.0
    assert backoff.delay(4, retry_after=0.5) == 1.0


def test_the_policy_backoff_is_the_shared_one_drawing_from_the_given_random():
    policy = RetryPolicy(backoff_base_seconds=0.1, backoff_max_seconds=1.0)
    backoff = backoff_for(policy, random.Random(7))
    assert isinstance(backoff, flotilla.backoff.Backoff)
    assert Backoff is flotilla.backoff.Backoff  # flotilla.http.retry.Backoff is a re-export
    seeded = random.Random(7)
    assert [backoff.delay(n) for n in range(4)] == [seeded.random() * c for c in (0.1, 0.2, 0.4, 0.8)]


def test_retry_after_reads_seconds_and_http_dates():
    now = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Fri, 15 Jan 2027 08:00:05 GMT", now) == pytest.approx(5.0)
    assert parse_retry_after("Fri, 15 Jan 2027 07:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_only_idempotent_methods_or_an_idempotency_key_may_retry():
    assert may_retry("GET", {})
    assert may_retry("put", {})
    assert not may_retry("POST", {})
    assert not may_retry("PATCH", {"Idempotency-Key": ""})
    assert may_retry("POST", {"idempotency-key": "order-42"})


def test_retry_conditions():
    assert retry_condition(None, connect_failed=True) == "connect-failure"
    assert [retry_condition(s, connect_failed=False) for s in (429, 502, 503, 504)] == [
        "429",
        "502",
        "503",
        "504",
    ]
    assert retry_condition(500, connect_failed=False) is None
    assert retry_condition(404, connect_failed=False) is None


def test_budget_allows_the_floor_then_a_share_of_recent_calls():
    clock = ManualClock()
    budget = RetryBudget(RetryBudgetPolicy(ratio=0.2, min_retries=2, window_seconds=10), clock)
    for _ in range(10):
        budget.record_call()
    # floor 2 + 20% of 10 calls = 4 retries
    assert [budget.try_spend() for _ in range(5)] == [True, True, True, True, False]
    for _ in range(5):
        budget.record_call()
    assert budget.try_spend()  # 2 + 0.2 * 15 = 5
    assert not budget.try_spend()


def test_budget_refills_as_the_window_slides():
    clock = ManualClock()
    budget = RetryBudget(RetryBudgetPolicy(ratio=0.0, min_retries=1, window_seconds=10), clock)
    budget.record_call()
    assert budget.try_spend()
    assert not budget.try_spend()
    clock.advance(5)
    assert not budget.try_spend()  # the spent retry is still in the window
    clock.advance(6)
    assert budget.try_spend()
