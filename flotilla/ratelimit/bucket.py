"""The token bucket: its parameters, its answer, and the in-process implementation.

A bucket holds up to ``burst`` tokens and gains ``per_second`` of them continuously; a request
takes one or is refused. So a client may send ``burst`` requests at once, then ``per_second`` a
second on average.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from flotilla.clock import SYSTEM_CLOCK, Clock


@dataclass(frozen=True)
class Rate:
    burst: int
    per_second: float

    def __post_init__(self) -> None:
        if self.burst < 1 or self.per_second <= 0:
            raise ValueError("a rate needs burst >= 1 and per_second > 0")


@dataclass(frozen=True)
class Decision:
    """The answer for one request, with what the ``RateLimit-*`` and ``Retry-After`` headers say."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float  # until the bucket is full again
    retry_after_seconds: float  # until one token is there (0 when allowed)

    @classmethod
    def from_tokens(cls, rate: Rate, tokens: float, allowed: bool) -> Decision:
        """The one place both limiters turn a bucket's level into an answer."""
        return cls(
            allowed=allowed,
            limit=rate.burst,
            remaining=max(0, math.floor(tokens)),
            reset_seconds=max(0.0, (rate.burst - tokens) / rate.per_second),
            retry_after_seconds=0.0 if allowed else max(0.0, (1 - tokens) / rate.per_second),
        )


class Limiter(Protocol):
    def acquire(self, key: str, rate: Rate) -> Decision:
        """Take one token from ``key``'s bucket if there is one."""


def refill(tokens: float, elapsed: float, rate: Rate) -> float:
    return min(float(rate.burst), tokens + max(0.0, elapsed) * rate.per_second)


class MemoryLimiter:
    """Buckets in this process (per gunicorn worker), at most ``max_keys`` of them.

    The least recently used bucket is dropped beyond ``max_keys``, so a scan from many addresses
    cannot grow memory without bound; a dropped bucket comes back full, which errs on admitting.
    """

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def acquire(self, key: str, rate: Rate) -> Decision:
        now = self._clock.monotonic()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(rate.burst), now))
            tokens = refill(tokens, now - last, rate)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        return Decision.from_tokens(rate, tokens, allowed)
