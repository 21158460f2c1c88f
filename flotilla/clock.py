"""Time as every chassis piece sees it: a monotonic clock, a wall clock and sleep, all injectable.

Backoff, retry budgets, breaker cool-downs and deadlines all depend on time; passing a
``ManualClock`` lets tests step through them without ever sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (durations and expiries)."""

    def time(self) -> float:
        """Seconds since the epoch (only to read HTTP dates such as ``Retry-After``)."""

    def sleep(self, seconds: float) -> None:
        """Wait; the manual clock just moves forward."""


class SystemClock:
    """The real clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that moves only when told to; ``sleep`` advances it and records the request.

    ``sleeps`` keeps every requested wait in order, which is how tests read a backoff schedule.
    """

    def __init__(self, start: float = 1_000.0, wall_start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._wall_offset

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
