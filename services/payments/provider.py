"""The simulated card provider: what each test card does, how long a call takes, and injected faults.

Every call first waits ``PAYMENTS_FAULT_LATENCY_MS`` and then fails with a 503 problem at
``PAYMENTS_FAULT_ERROR_RATE``, before anything is recorded, so a caller's retries, timeouts and
circuit breaker can be exercised against it. Waiting honours the caller's deadline (the chassis'
``X-Flotilla-Deadline-Ms``): a wait that would end after it ends at it with a 504, as a real provider
call cut off by the caller's timeout would, and nothing is recorded.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from flotilla.errors import ProblemError
from flotilla.http.deadline import remaining_budget
from flotilla.http.errors import DeadlineExceeded
from services.payments.cards import Behaviour, behaviour
from services.payments.settings import Settings

PROVIDER = "payments-provider"
PROVIDER_ERROR = "urn:flotilla:problem:provider-error"
PROVIDER_UNAVAILABLE = "urn:flotilla:problem:provider-unavailable"


class Provider:
    """One per app. ``sleep`` and ``rng`` are injectable so tests can count waits and fix draws."""

    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.latency_seconds = settings.fault_latency_ms / 1000
        self.error_rate = settings.fault_error_rate
        self.slow_seconds = settings.slow_card_seconds
        self._sleep = sleep
        self._rng = rng or random.Random(settings.fault_seed)  # noqa: S311 - fault draws, not security

    def authorize(self, number: str) -> Behaviour:
        """The provider's answer for a card: APPROVE, DECLINE, INSUFFICIENT_FUNDS or UNSUPPORTED.

        The slow card approves once its delay is over; the error card raises a 500 problem.
        """
        self._call()
        found = behaviour(number)
        if found is Behaviour.SLOW:
            self._wait(self.slow_seconds)
            return Behaviour.APPROVE
        if found is Behaviour.SERVER_ERROR:
            raise ProblemError(
                500,
                "Provider error",
                "the provider failed to process the card (the processing-error test card)",
                type=PROVIDER_ERROR,
                reason=Behaviour.SERVER_ERROR.value,
            )
        return found

    def settle(self) -> None:
        """A capture or a void as the provider sees it: the latency and the faults, nothing else."""
        self._call()

    def _call(self) -> None:
        self._wait(self.latency_seconds)
        if self.error_rate and self._rng.random() < self.error_rate:
            raise ProblemError(
                503,
                "Provider unavailable",
                "injected fault (PAYMENTS_FAULT_ERROR_RATE): nothing was recorded, retry with the same key",
                type=PROVIDER_UNAVAILABLE,
                reason="provider_unavailable",
            )

    def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        left = remaining_budget()
        if left is not None and left <= seconds:
            self._sleep(max(0.0, left))
            raise DeadlineExceeded(
                PROVIDER, f"the provider would answer in {seconds:g} s, after the caller's deadline"
            )
        self._sleep(seconds)
