"""A circuit breaker per upstream: closed, open, half-open, with an injectable clock.

Ours rather than pybreaker's: that one trips only on consecutive failures and lets one trial through;
this contract also trips on the failure rate in a time window and allows a set number of trials.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from flotilla.clock import SYSTEM_CLOCK, Clock
from flotilla.http.errors import CircuitOpenError
from flotilla.http.policy import CircuitBreakerPolicy
from flotilla.http.window import SlidingCounts

log = logging.getLogger(__name__)


class State(enum.IntEnum):
    """Values are what the ``http_client_circuit_state`` gauge reports (higher is worse)."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


StateListener = Callable[[str, State, State], None]


@dataclass(frozen=True, slots=True)
class Permit:
    """Proof that a call was let through; hand it back with the call's outcome.

    ``generation`` ties the outcome to the state it was admitted in: an answer that arrives after
    the circuit has moved on (a slow call started while closed, ending after it opened) must not
    count as a half-open trial.
    """

    generation: int
    trial: bool


class CircuitBreaker:
    """Trips on ``consecutiveFailures`` in a row, or on ``failureRateThreshold`` of at least
    ``minimumCalls`` calls in the window; stays open ``openSeconds``; then lets
    ``halfOpenMaxCalls`` trial calls through, closing when all succeed and reopening on any failure.

    Each state change is logged once and passed to the listeners (the metrics gauge), never per call.
    """

    def __init__(
        self,
        upstream: str,
        policy: CircuitBreakerPolicy,
        *,
        clock: Clock = SYSTEM_CLOCK,
        listeners: tuple[StateListener, ...] = (),
    ) -> None:
        self.upstream = upstream
        self.policy = policy
        self._clock = clock
        self._listeners = listeners
        self._lock = threading.Lock()
        self._state = State.CLOSED
        self._generation = 0
        self._consecutive = 0
        self._window = SlidingCounts(policy.window_seconds, clock)  # (calls, failures)
        self._opened_at = 0.0
        self._trials_started = 0
        self._trials_succeeded = 0

    @property
    def state(self) -> State:
        """The state now; an open circuit whose cool-down is over reads as half-open."""
        with self._lock:
            self._maybe_half_open()
            return self._state

    def acquire(self) -> Permit:
        """Let a call through or raise ``CircuitOpenError`` carrying when to try again."""
        with self._lock:
            self._maybe_half_open()
            if self._state is State.CLOSED:
                return Permit(self._generation, trial=False)
            if self._state is State.HALF_OPEN and self._trials_started < self.policy.half_open_max_calls:
                self._trials_started += 1
                return Permit(self._generation, trial=True)
            raise CircuitOpenError(self.upstream, retry_after=self._retry_after())

    def record(self, permit: Permit, success: bool) -> None:
        """The outcome of a call let through by ``permit``."""
        with self._lock:
            if permit.generation != self._generation:
                return
            if self._state is State.CLOSED:
                self._record_closed(success)
            elif self._state is State.HALF_OPEN:
                if not success:
                    self._open()
                else:
                    self._trials_succeeded += 1
                    if self._trials_succeeded >= self.policy.half_open_max_calls:
                        self._move(State.CLOSED)

    def release(self, permit: Permit) -> None:
        """The call ended with no verdict on the upstream (cancelled, our own deadline): free its trial."""
        with self._lock:
            if permit.trial and permit.generation == self._generation and self._state is State.HALF_OPEN:
                self._trials_started -= 1

    def _record_closed(self, success: bool) -> None:
        self._window.add(1, 0 if success else 1)
        if success:
            self._consecutive = 0
            return
        self._consecutive += 1
        calls, failures = self._window.totals()
        if self._consecutive >= self.policy.consecutive_failures or (
            calls >= self.policy.minimum_calls and failures / calls >= self.policy.failure_rate_threshold
        ):
            self._open()

    def _open(self) -> None:
        self._opened_at = self._clock.monotonic()
        self._move(State.OPEN)

    def _maybe_half_open(self) -> None:
        if (
            self._state is State.OPEN
            and self._clock.monotonic() >= self._opened_at + self.policy.open_seconds
        ):
            self._move(State.HALF_OPEN)

    def _retry_after(self) -> float:
        if self._state is State.OPEN:
            return max(0.0, self._opened_at + self.policy.open_seconds - self._clock.monotonic())
        return 1.0  # half-open with every trial slot taken: the verdict is near

    def _move(self, new: State) -> None:
        old, self._state = self._state, new
        self._generation += 1
        self._consecutive = 0
        self._trials_started = self._trials_succeeded = 0
        if new is State.CLOSED:
            self._window.clear()
        log.log(
            logging.WARNING if new is State.OPEN else logging.INFO,
            "circuit %s: %s -> %s",
            self.upstream,
            old.name.lower(),
            new.name.lower(),
            extra={
                "upstream": self.upstream,
                "circuit_from": old.name.lower(),
                "circuit_to": new.name.lower(),
            },
        )
        for listener in self._listeners:
            listener(self.upstream, old, new)
