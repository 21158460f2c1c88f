"""Retry rules: which calls may retry, how long to wait (full jitter, Retry-After) and the budget.

The wait itself is ``flotilla.backoff.Backoff`` (re-exported here as ``Backoff``), built from the
upstream's policy by :func:`backoff_for`.

Kept apart from the client so each rule is a plain function or object, testable with a manual clock
and a seeded random source. We do not use tenacity's loop: its stop, wait and retry hooks would each
need our budget, deadline and Retry-After logic bent into side effects, and it reads its own clock.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from flotilla.backoff import Backoff
from flotilla.clock import SYSTEM_CLOCK, Clock
from flotilla.http.policy import RetryBudgetPolicy, RetryPolicy
from flotilla.http.window import SlidingCounts

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
CONNECT_FAILURE = "connect-failure"


def may_retry(method: str, headers: Mapping[str, str | bytes]) -> bool:
    """Idempotent methods, or any method carrying an ``Idempotency-Key`` the server deduplicates on.

    A POST without one may have taken effect before the answer was lost; sending it again could
    charge a card twice.
    """
    if method.upper() in IDEMPOTENT_METHODS:
        return True
    wanted = IDEMPOTENCY_KEY_HEADER.lower()
    return any(name.lower() == wanted and value for name, value in headers.items())


def retry_condition(status: int | None, connect_failed: bool) -> str | None:
    """The ``retryOn`` name matching an outcome, or None when the outcome is never retried."""
    if connect_failed:
        return CONNECT_FAILURE
    if status in (429, 502, 503, 504):
        return str(status)
    return None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def backoff_for(policy: RetryPolicy, rng: random.Random | None = None) -> Backoff:
    """The upstream's backoff (``backoffBaseSeconds``, ``backoffMaxSeconds``), full jitter drawn from
    ``rng``; the client adds the server's ``Retry-After`` as a floor (``Backoff.delay``)."""
    source = rng or random.Random()  # noqa: S311 - jitter, not security
    return Backoff(policy.backoff_base_seconds, policy.backoff_max_seconds, rng=source.random)


class RetryBudget:
    """Retries allowed: ``min_retries`` plus ``ratio`` of the calls seen in the last window.

    Thread-safe: one budget is shared by every thread calling the upstream.
    """

    def __init__(self, policy: RetryBudgetPolicy, clock: Clock = SYSTEM_CLOCK) -> None:
        self.ratio = policy.ratio
        self.min_retries = policy.min_retries
        self._lock = threading.Lock()
        self._counts = SlidingCounts(policy.window_seconds, clock)  # (calls, retries)

    def record_call(self) -> None:
        """Count a call (its first try); retries are counted by ``try_spend``."""
        with self._lock:
            self._counts.add(first=1)

    def try_spend(self) -> bool:
        """Take one retry from the budget if there is one left; False means do not retry."""
        with self._lock:
            calls, retries = self._counts.totals()
            if retries + 1 > self.min_retries + self.ratio * calls:
                return False
            self._counts.add(second=1)
            return True


__all__ = [
    "CONNECT_FAILURE",
    "IDEMPOTENCY_KEY_HEADER",
    "IDEMPOTENT_METHODS",
    "Backoff",
    "RetryBudget",
    "backoff_for",
    "may_retry",
    "parse_retry_after",
    "retry_condition",
]
