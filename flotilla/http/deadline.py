"""Deadlines: how long the caller will wait, carried downstream so no service works past it.

The header carries the *remaining* budget in milliseconds (``X-Flotilla-Deadline-Ms: 850``), not an
absolute time: hosts' clocks differ, and a relative budget needs none of them to agree (gRPC's
``grpc-timeout`` makes the same choice). The time a request spends on the wire is not subtracted,
so a callee's view is at most one network hop generous. Each receiver turns it back into an
expiry on its own monotonic clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from flask import Flask

from flotilla.clock import SYSTEM_CLOCK, Clock
from flotilla.errors import problem_response
from flotilla.http.errors import DeadlineExceeded
from flotilla.wsgi import WSGIApp, wrap

log = logging.getLogger(__name__)

DEADLINE_HEADER = "X-Flotilla-Deadline-Ms"
_ENVIRON_KEY = "HTTP_" + DEADLINE_HEADER.upper().replace("-", "_")


class Deadline:
    """A point in time on ``clock``'s monotonic scale after which the work is worthless."""

    __slots__ = ("_clock", "expires_at")

    def __init__(self, expires_at: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.expires_at = expires_at
        self._clock = clock

    @classmethod
    def after(cls, seconds: float, clock: Clock = SYSTEM_CLOCK) -> Deadline:
        return cls(clock.monotonic() + seconds, clock)

    def remaining(self) -> float:
        """Seconds left; zero or negative once passed."""
        return self.expires_at - self._clock.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def header_value(self) -> str:
        """The header's value now: whole milliseconds left, never negative."""
        return str(max(0, int(self.remaining() * 1000)))

    def earlier(self, seconds: float | None) -> Deadline:
        """This deadline or one ``seconds`` from now, whichever comes first."""
        if seconds is None:
            return self
        other = self._clock.monotonic() + seconds
        return self if self.expires_at <= other else Deadline(other, self._clock)


_deadline_var: ContextVar[Deadline | None] = ContextVar("flotilla_deadline", default=None)


def current_deadline() -> Deadline | None:
    """The deadline of the work in progress (the incoming request's), if it has one."""
    return _deadline_var.get()


def remaining_budget() -> float | None:
    """Seconds left before the current deadline, or None when there is no deadline."""
    deadline = _deadline_var.get()
    return None if deadline is None else deadline.remaining()


def check_deadline() -> None:
    """Raise ``DeadlineExceeded`` (answered as 504) if the caller has already given up.

    Call it between steps of long work: nobody is waiting for the result any more.
    """
    deadline = _deadline_var.get()
    if deadline is not None and deadline.expired:
        raise DeadlineExceeded()


@contextmanager
def deadline_scope(seconds: float, clock: Clock = SYSTEM_CLOCK) -> Iterator[Deadline]:
    """Give the enclosed work (and every call it makes) at most ``seconds``; an outer, earlier
    deadline still wins. For work outside a request: a consumer's message handler, a job."""
    outer = _deadline_var.get()
    deadline = outer.earlier(seconds) if outer is not None else Deadline.after(seconds, clock)
    token = _deadline_var.set(deadline)
    try:
        yield deadline
    finally:
        _deadline_var.reset(token)


def parse_header(value: str | None) -> float | None:
    """Seconds from a header value, or None when absent or malformed (then the request has no
    deadline from its caller: a garbled header must not fail the request)."""
    if value is None:
        return None
    value = value.strip()
    if not value.lstrip("-").isdigit() or len(value) > 12:
        return None
    return int(value) / 1000.0


class Deadlines:
    """Flask extension: reads the caller's deadline, answers 504 at once when it has passed, and
    sets it as the current deadline so ``flotilla.http`` calls inherit what is left of it.

    ``default_seconds`` bounds requests that arrive without a deadline (None: unbounded).
    """

    def __init__(
        self, app: Flask | None = None, *, default_seconds: float | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.default_seconds = default_seconds
        self._clock = clock
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions["flotilla.deadline"] = self
        wrap(app, lambda wsgi_app: self._middleware(app, wsgi_app))

    def _middleware(self, app: Flask, wsgi_app: WSGIApp) -> WSGIApp:
        # WSGI middleware rather than Flask hooks, like the chassis' telemetry: no per-request
        # hook dispatch on the common path (no deadline header, no default).
        def handle(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            budget = parse_header(environ.get(_ENVIRON_KEY))
            if budget is None and self.default_seconds is None:
                return wsgi_app(environ, start_response)
            if budget is not None and budget <= 0:
                with app.request_context(environ):
                    expired = problem_response(
                        504,
                        "Deadline exceeded",
                        "the caller's deadline had passed when the request arrived",
                        type="urn:flotilla:problem:deadline-exceeded",
                    )
                return expired(environ, start_response)
            if budget is None:
                deadline = Deadline.after(self.default_seconds or 0.0, self._clock)
            else:
                deadline = Deadline.after(budget, self._clock).earlier(self.default_seconds)
            token = _deadline_var.set(deadline)
            try:
                return wsgi_app(environ, start_response)
            finally:
                _deadline_var.reset(token)

        return handle
