"""``flotilla.backoff``: bounds, full jitter, the cap, whole seconds for SQS and the Retry-After floor.

Every random draw comes from a seeded source, so nothing here is flaky and nothing sleeps.
"""

from __future__ import annotations

import ast
import dataclasses
import random
from pathlib import Path

import pytest

import flotilla.backoff
from flotilla.backoff import MAX_VISIBILITY_SECONDS, Backoff


def top() -> float:
    return 1.0


def bottom() -> float:
    return 0.0


@pytest.mark.parametrize(("base", "cap"), [(0.05, 2.0), (1.0, 300.0), (2.0, 900.0), (0.3, 0.3)])
def test_every_delay_is_between_zero_and_the_capped_exponential(base: float, cap: float) -> None:
    backoff = Backoff(base, cap, rng=random.Random(11).random)
    for retry in range(40):
        ceiling = min(cap, base * 2**retry)
        assert backoff.ceiling(retry) == pytest.approx(ceiling)
        for _ in range(50):
            assert 0.0 <= backoff.delay(retry) <= ceiling


def test_full_jitter_varies_and_is_reproducible_with_a_seed() -> None:
    draws = [Backoff(1.0, 100.0, rng=random.Random(3).random).delay(5) for _ in range(2)]
    assert draws[0] == draws[1], "the same seed gives the same delay"
    backoff = Backoff(1.0, 100.0, rng=random.Random(3).random)
    delays = [backoff.delay(5) for _ in range(500)]  # ceiling 32 s
    assert len(set(delays)) == len(delays)
    assert min(delays) < 32 * 0.1 and max(delays) > 32 * 0.9, "spread over [0, ceiling], not clustered"


def test_without_jitter_the_delay_is_the_ceiling() -> None:
    backoff = Backoff(0.1, 1.0, full_jitter=False, rng=bottom)
    assert [backoff.delay(n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_the_cap_holds_for_any_retry_number_without_overflowing() -> None:
    backoff = Backoff(0.05, 2.0, rng=top)
    assert [backoff.delay(n) for n in (6, 7, 100, 10_000)] == [2.0, 2.0, 2.0, 2.0]
    assert backoff.delay(-1) == 0.05, "a negative retry number counts as the first retry"
    assert Backoff(10.0, float("inf"), rng=top).delay(10_000) == 10.0 * 2.0**62


def test_retry_after_is_a_floor_never_a_ceiling() -> None:
    backoff = Backoff(0.1, 1.0, rng=top)
    assert backoff.delay(0, retry_after=3.0) == 3.0, "the server asked for longer than our backoff"
    assert backoff.delay(4, retry_after=0.5) == 1.0, "our backoff is longer than the server asked"
    assert Backoff(0.1, 1.0, rng=bottom).delay(3, retry_after=0.0) == 0.0
    assert backoff.delay(2, retry_after=None) == pytest.approx(0.4)


def test_whole_seconds_round_up_and_are_never_zero() -> None:
    assert Backoff(0.3, 900.0, full_jitter=False).whole_seconds(0) == 1
    assert Backoff(0.3, 900.0, full_jitter=False).whole_seconds(2) == 2  # 1.2 s rounds up
    assert Backoff(2.0, 900.0, rng=bottom).whole_seconds(4) == 1, "a zero draw still waits a second"
    seeded = Backoff(2.0, 900.0, rng=random.Random(5).random)
    for retry in range(30):
        for _ in range(20):
            seconds = seeded.whole_seconds(retry)
            assert isinstance(seconds, int)
            assert 1 <= seconds <= max(1, min(900, 2 * 2**retry))


def test_whole_seconds_never_exceed_the_sqs_visibility_maximum() -> None:
    assert MAX_VISIBILITY_SECONDS == 43_200
    huge = Backoff(3600.0, 10.0**9, full_jitter=False)
    assert [huge.whole_seconds(n) for n in (3, 4, 20, 5000)] == [28_800, 43_200, 43_200, 43_200]
    jittered = Backoff(3600.0, 10.0**9, rng=random.Random(1).random)
    assert all(1 <= jittered.whole_seconds(30) <= 43_200 for _ in range(200))


def test_it_is_a_frozen_value_and_refuses_negative_settings() -> None:
    backoff = Backoff(1.0, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        backoff.base_seconds = 3.0  # type: ignore[misc]
    assert backoff == Backoff(1.0, 2.0, rng=top), "the random source is not part of the value"
    with pytest.raises(ValueError):
        Backoff(-1.0, 2.0)
    with pytest.raises(ValueError):
        Backoff(1.0, -2.0)


def test_it_imports_only_the_standard_library() -> None:
    """The bottom of the layering: HTTP, messaging and the rest import it, never the other way."""
    tree = ast.parse(Path(flotilla.backoff.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "collections.abc", "dataclasses", "math", "random"}
