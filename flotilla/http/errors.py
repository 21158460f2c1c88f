"""Typed errors of outgoing calls; each is also the problem+json this service answers if unhandled.

A caller catches them to fall back (a cached answer, a default); one that escapes a view becomes the
gateway answer a client expects: 503 with Retry-After for an open circuit or a full bulkhead, 504 for
a deadline or timeout, 502 when the upstream could not be reached.
"""

from __future__ import annotations

import math
from typing import ClassVar

from flotilla.errors import ProblemError


class UpstreamError(ProblemError):
    """Base of every failure of a call to ``upstream`` (not an HTTP error status, which is returned).

    ``outcome`` is the label the call is counted under in ``http_client_requests_total``.
    """

    outcome: ClassVar[str] = "error"

    def __init__(
        self,
        upstream: str,
        status: int,
        title: str,
        detail: str,
        *,
        retry_after: float | None = None,
    ) -> None:
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after is not None else None
        super().__init__(
            status, title, detail, type=f"urn:flotilla:problem:{_slug(type(self).__name__)}", headers=headers
        )
        self.upstream = upstream
        self.retry_after = retry_after


class CircuitOpenError(UpstreamError):
    """The upstream's circuit is open: no request was sent. ``retry_after`` says when trials resume."""

    outcome = "circuit_open"

    def __init__(self, upstream: str, retry_after: float) -> None:
        super().__init__(
            upstream,
            503,
            "Upstream unavailable",
            f"{upstream} is failing; calls are paused",
            retry_after=retry_after,
        )


class BulkheadFullError(UpstreamError):
    """Too many calls to the upstream are already in flight from this process; none was sent."""

    outcome = "bulkhead_full"

    def __init__(self, upstream: str, limit: int) -> None:
        super().__init__(
            upstream, 503, "Upstream busy", f"{limit} calls to {upstream} already in flight", retry_after=1
        )
        self.limit = limit


class DeadlineExceeded(UpstreamError):
    """The caller's deadline has passed (or would before an answer could come): stop working."""

    outcome = "deadline_exceeded"

    def __init__(self, upstream: str = "", detail: str = "the request's deadline has passed") -> None:
        super().__init__(upstream, 504, "Deadline exceeded", detail)


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer within the try's timeout."""

    outcome = "timeout"

    def __init__(self, upstream: str, detail: str) -> None:
        super().__init__(upstream, 504, "Upstream timeout", detail)


class UpstreamConnectError(UpstreamError):
    """No connection could be made (refused, unreachable, name not resolved), after any retries."""

    outcome = "connect_error"

    def __init__(self, upstream: str, detail: str) -> None:
        super().__init__(upstream, 502, "Upstream unreachable", detail)


class UpstreamProtocolError(UpstreamError):
    """The connection broke or the answer was not valid HTTP."""

    outcome = "protocol_error"

    def __init__(self, upstream: str, detail: str) -> None:
        super().__init__(upstream, 502, "Bad upstream response", detail)


def _slug(name: str) -> str:
    out = []
    for i, ch in enumerate(name.removesuffix("Error")):
        if ch.isupper() and i:
            out.append("-")
        out.append(ch.lower())
    return "".join(out)
