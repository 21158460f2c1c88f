"""A bulkhead: at most N calls in flight to one upstream, the next rejected at once.

A slow upstream otherwise ties up every worker thread waiting on it, and the service stops
answering even the requests that never touch that upstream.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flotilla.http.errors import BulkheadFullError


class Bulkhead:
    """Counts in-flight calls; ``slot()`` raises ``BulkheadFullError`` rather than queueing.

    Rejecting instead of waiting keeps the caller's latency bounded and tells it, with a typed error,
    to degrade or shed the request.
    """

    def __init__(self, upstream: str, max_concurrent: int) -> None:
        self.upstream = upstream
        self.limit = max_concurrent
        self._lock = threading.Lock()
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._lock:
            if self._in_flight >= self.limit:
                raise BulkheadFullError(self.upstream, self.limit)
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
