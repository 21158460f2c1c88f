"""``flotilla.outage.Outage`` with a manual clock: the wait after a failure, ``hold``, logging once."""

from __future__ import annotations

import logging

import pytest

from flotilla.clock import ManualClock
from flotilla.outage import Outage

LOGGER = "tests.outage"


def outage(clock: ManualClock, **kwargs: object) -> Outage:
    return Outage(
        "thing",
        "doing without",
        retry_seconds=5.0,
        clock=clock,
        logger=logging.getLogger(LOGGER),
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_failure_waits_retry_seconds_and_a_success_ends_the_outage() -> None:
    clock = ManualClock()
    thing = outage(clock)
    assert thing.worth_trying() and not thing.down
    thing.failed(ConnectionError("refused"))
    assert thing.down and not thing.worth_trying()
    clock.advance(4.9)
    assert not thing.worth_trying()
    clock.advance(0.1)
    assert thing.worth_trying() and thing.down, "worth trying again, but down until a success"
    thing.failed(ConnectionError("refused"))
    assert not thing.worth_trying(), "each failure starts the wait again"
    thing.succeeded()
    assert thing.worth_trying() and not thing.down


def test_hold_spaces_tries_after_a_success_without_calling_it_an_outage() -> None:
    clock = ManualClock()
    thing = outage(clock)
    thing.hold()
    assert not thing.worth_trying() and not thing.down
    clock.advance(5)
    assert thing.worth_trying()


def test_the_outage_and_the_recovery_are_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    thing = outage(clock, log_extra={"upstream": "orders"})
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for _ in range(3):
            thing.failed(ConnectionError("refused"))
            clock.advance(6)
        thing.succeeded()
        thing.succeeded()
    assert [r.getMessage() for r in caplog.records] == [
        "thing unavailable (refused); doing without until it is back",
        "thing available again after 18.0s",
    ]
    assert [getattr(r, "upstream", None) for r in caplog.records] == ["orders", "orders"]
