"""Exponential backoff with full jitter and a cap: the one wait-before-retry rule of the chassis.

The wait before retry ``n`` (0 for the first retry) is drawn uniformly from
``[0, min(max_seconds, base_seconds * 2**n)]``. Full jitter spreads the retries of many callers that
failed at the same moment, so they don't come back in lockstep (the AWS Architecture Blog,
"Exponential Backoff and Jitter"). ``full_jitter=False`` waits the ceiling itself, for callers whose
schedule must be predictable (SQS redelivery, the outbox).

Used by the HTTP client's retries (``delay``, with a server's ``Retry-After`` as a floor), the
EventBridge publisher's retry of failed entries, and, in whole seconds (``whole_seconds``), by the
SQS consumer's visibility delays and the outbox relay. It sits at the bottom of the layering and
imports only the standard library; the random source is injectable so tests read exact schedules.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

# SQS's ceiling for a message's invisibility (ChangeMessageVisibility, and 12 h from its receipt);
# also a sane cap for any whole-seconds retry delay.
MAX_VISIBILITY_SECONDS = 12 * 3600

# 2**62 times any sensible base is already past every cap; larger exponents would overflow a float.
_MAX_EXPONENT = 62


@dataclass(frozen=True)
class Backoff:
    """Wait before retry ``n``: up to ``min(max_seconds, base_seconds * 2**n)``, fully jittered.

    ``rng`` returns a float in [0, 1) (``random.random``, ``random.Random(7).random``); the wait is
    that fraction of the ceiling. Thread-safe as long as ``rng`` is (``random.Random``'s is).
    """

    base_seconds: float
    max_seconds: float
    full_jitter: bool = True
    rng: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.base_seconds < 0 or self.max_seconds < 0:
            raise ValueError("backoff base_seconds and max_seconds must not be negative")

    def ceiling(self, retry: int) -> float:
        """The longest wait before retry ``retry`` (0 for the first retry)."""
        exponent = min(max(retry, 0), _MAX_EXPONENT)
        return min(self.max_seconds, self.base_seconds * float(2**exponent))

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """The wait before retry ``retry``, in seconds; never shorter than ``retry_after`` (the
        server's ``Retry-After``) when one is given."""
        ceiling = self.ceiling(retry)
        wait = self.rng() * ceiling if self.full_jitter else ceiling
        return wait if retry_after is None else max(wait, retry_after)

    def whole_seconds(self, retry: int) -> int:
        """``delay`` rounded up to whole seconds, at least 1 and at most SQS's 12 h
        (``MAX_VISIBILITY_SECONDS``): what ``ChangeMessageVisibility`` takes."""
        return max(1, min(math.ceil(self.delay(retry)), MAX_VISIBILITY_SECONDS))


__all__ = ["MAX_VISIBILITY_SECONDS", "Backoff"]
