"""A daily request quota per key (an API key), counted per UTC day in Redis or in process."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from flotilla.clock import SYSTEM_CLOCK, Clock
from flotilla.ratelimit.redis_store import RedisState, redis_errors

DAY = 86_400

# KEYS[1] counter; ARGV[1] expiry seconds. The first increment of a day sets the expiry.
COUNT_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


@dataclass(frozen=True)
class QuotaDecision:
    allowed: bool
    limit: int
    used: int
    reset_seconds: float  # until the UTC day ends


class DailyQuota:
    """``take(key, limit)`` counts one request and says whether it is within today's ``limit``.

    Refused requests count too (the counter is one atomic INCR), so a client hammering past its
    quota never gets back under it the same day; that is the point of a quota.
    """

    def __init__(
        self,
        state: RedisState | None = None,
        *,
        prefix: str = "flotilla:quota:",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.state = state
        self.prefix = prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._local: dict[tuple[str, int], int] = {}
        self._script = state.client.register_script(COUNT_SCRIPT) if state is not None else None

    def take(self, key: str, limit: int) -> QuotaDecision:
        now = self._clock.time()
        day = int(now // DAY)
        reset = (day + 1) * DAY - now
        used = self._count_redis(key, day) if self.state is not None and self.state.available else None
        if used is None:
            used = self._count_local(key, day)
        return QuotaDecision(allowed=used <= limit, limit=limit, used=used, reset_seconds=reset)

    def _count_redis(self, key: str, day: int) -> int | None:
        assert self.state is not None and self._script is not None
        name = f"{self.prefix}{key}:{time.strftime('%Y%m%d', time.gmtime(day * DAY))}"
        try:
            used = int(self._script(keys=[name], args=[2 * DAY]))
        except redis_errors() as err:
            self.state.failed(err)
            return None
        self.state.succeeded()
        return used

    def _count_local(self, key: str, day: int) -> int:
        with self._lock:
            for stale in [k for k in self._local if k[1] != day]:
                del self._local[stale]
            used = self._local.get((key, day), 0) + 1
            self._local[(key, day)] = used
            return used
