"""Exponential backoff shared by the consumer (visibility delays) and the outbox relay (next attempt)."""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_VISIBILITY_SECONDS = 12 * 3600  # SQS's ceiling for a message's invisibility, and a sane cap for any retry


@dataclass(frozen=True)
class Backoff:
    """Delay before attempt ``n + 1`` after ``n`` failures: ``base * 2 ** (n - 1)``, capped, in whole seconds.

    Whole seconds because SQS visibility timeouts are integers; no jitter because the spread comes
    from the messages themselves (each fails at its own time).
    """

    base_seconds: float = 2.0
    max_seconds: float = 900.0

    def delay(self, failures: int) -> int:
        seconds = self.base_seconds * 2.0 ** max(0, failures - 1)
        return math.ceil(min(seconds, self.max_seconds, float(MAX_VISIBILITY_SECONDS)))
