"""Whether a dependency (a cache, a shared rate-limit store, Cloud Map, a JWKS) is worth trying now.

After a failure the dependency is not tried again for ``retry_seconds``: during an outage every
request would otherwise wait out a connect timeout first. The first failure and the recovery are
logged once each, not per request. ``hold`` starts the same wait after a success, for callers that
space their tries whatever the outcome (the JWKS cache's refetches for unknown keys).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from flotilla.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)


class Outage:
    """Outage bookkeeping for one dependency, safe to share between threads.

    ``what`` names the dependency and ``meanwhile`` what is done without it, for the log lines,
    which go to ``logger`` (the owner's, so they read as the cache's or the limiter's) with
    ``log_extra`` as their extra fields (``{"upstream": name}``).
    """

    def __init__(
        self,
        what: str,
        meanwhile: str,
        *,
        retry_seconds: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
        logger: logging.Logger = log,
        log_extra: Mapping[str, object] | None = None,
    ) -> None:
        self._log = logger
        self._extra = dict(log_extra or {})
        self.what = what
        self.meanwhile = meanwhile
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        """True from a failure until the next success."""
        return self._down_since is not None

    def worth_trying(self) -> bool:
        """False while the wait after the last failure (or ``hold``) runs."""
        return self._clock.monotonic() >= self._retry_at

    def failed(self, err: BaseException) -> None:
        now = self._clock.monotonic()
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = now
            self._retry_at = now + self.retry_seconds
        if first:
            self._log.warning(
                "%s unavailable (%s); %s until it is back", self.what, err, self.meanwhile, extra=self._extra
            )

    def hold(self) -> None:
        """Wait ``retry_seconds`` before the next try even though the last one worked."""
        with self._lock:
            self._retry_at = self._clock.monotonic() + self.retry_seconds

    def succeeded(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            since, self._down_since = self._down_since, None
            self._retry_at = 0.0
        if since is not None:
            self._log.info(
                "%s available again after %.1fs",
                self.what,
                self._clock.monotonic() - since,
                extra=self._extra,
            )
