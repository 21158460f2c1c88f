"""Circuit breaker transitions, stepped with a manual clock."""

from __future__ import annotations

import logging

import pytest

from flotilla.clock import ManualClock
from flotilla.http.breaker import CircuitBreaker, State
from flotilla.http.errors import CircuitOpenError
from flotilla.http.policy import CircuitBreakerPolicy


def make(clock, changes=None, **policy):
    defaults = {
        "consecutive_failures": 3,
        "failure_rate_threshold": 0.5,
        "window_seconds": 10,
        "minimum_calls": 6,
        "open_seconds": 5,
        "half_open_max_calls": 2,
    }
    listeners = (lambda name, old, new: changes.append((old, new)),) if changes is not None else ()
    return CircuitBreaker(
        "catalog", CircuitBreakerPolicy(**(defaults | policy)), clock=clock, listeners=listeners
    )


def call(breaker, ok):
    breaker.record(breaker.acquire(), success=ok)


def test_consecutive_failures_open_the_circuit_and_a_success_resets_the_count():
    breaker = make(ManualClock())
    for ok in (False, False, True, False, False):
        call(breaker, ok)
    assert breaker.state is State.CLOSED
    call(breaker, False)
    assert breaker.state is State.OPEN


def test_open_circuit_fails_fast_with_the_time_left():
    clock = ManualClock()
    breaker = make(clock)
    for _ in range(3):
        call(breaker, False)
    clock.advance(2)
    with pytest.raises(CircuitOpenError) as caught:
        breaker.acquire()
    assert caught.value.retry_after == pytest.approx(3)
    assert caught.value.status == 503
    assert caught.value.headers == {"Retry-After": "3"}


def test_failure_rate_in_the_window_opens_without_a_streak():
    breaker = make(ManualClock(), consecutive_failures=100)
    for ok in (True, False, True, False, True):
        call(breaker, ok)
    assert breaker.state is State.CLOSED  # 2/5: too few calls to judge
    call(breaker, False)  # 3 of 6 failed = 0.5
    assert breaker.state is State.OPEN


def test_old_failures_leave_the_window():
    clock = ManualClock()
    breaker = make(clock, consecutive_failures=100)
    for ok in (False, False, False, True, True):
        call(breaker, ok)
    clock.advance(11)
    for ok in (True, True, True, True, True, False):
        call(breaker, ok)
    assert breaker.state is State.CLOSED  # 1 of 6 in the window


def test_half_open_admits_a_limited_number_of_trials_and_closes_when_they_succeed():
    clock = ManualClock()
    changes = []
    breaker = make(clock, changes)
    for _ in range(3):
        call(breaker, False)
    clock.advance(5)
    assert breaker.state is State.HALF_OPEN
    first, second = breaker.acquire(), breaker.acquire()
    with pytest.raises(CircuitOpenError):
        breaker.acquire()  # only two trials at once
    breaker.record(first, success=True)
    assert breaker.state is State.HALF_OPEN
    breaker.record(second, success=True)
    assert breaker.state is State.CLOSED
    assert changes == [
        (State.CLOSED, State.OPEN),
        (State.OPEN, State.HALF_OPEN),
        (State.HALF_OPEN, State.CLOSED),
    ]


def test_a_failed_trial_reopens_for_a_full_cool_down():
    clock = ManualClock()
    breaker = make(clock)
    for _ in range(3):
        call(breaker, False)
    clock.advance(5)
    call(breaker, False)
    assert breaker.state is State.OPEN
    clock.advance(4.9)
    assert breaker.state is State.OPEN


def test_a_released_trial_frees_its_slot():
    clock = ManualClock()
    breaker = make(clock, half_open_max_calls=1)
    for _ in range(3):
        call(breaker, False)
    clock.advance(5)
    breaker.release(breaker.acquire())
    call(breaker, True)
    assert breaker.state is State.CLOSED


def test_an_answer_from_before_the_circuit_opened_is_not_a_trial():
    clock = ManualClock()
    breaker = make(clock, half_open_max_calls=1)
    slow = breaker.acquire()
    for _ in range(3):
        call(breaker, False)
    clock.advance(5)
    assert breaker.state is State.HALF_OPEN
    breaker.record(slow, success=True)
    assert breaker.state is State.HALF_OPEN


def test_each_state_change_is_logged_once(caplog):
    clock = ManualClock()
    breaker = make(clock)
    with caplog.at_level(logging.INFO, logger="flotilla.http.breaker"):
        for _ in range(3):
            call(breaker, False)
        for _ in range(20):
            with pytest.raises(CircuitOpenError):
                breaker.acquire()
    assert [r.getMessage() for r in caplog.records] == ["circuit catalog: closed -> open"]
