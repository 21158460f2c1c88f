"""Buckets and quota counters in Redis, each one atomic script, with an in-process fallback.

Time comes from Redis (``TIME`` inside the script) unless a clock is given: replicas' clocks then
never disagree about a bucket. Tests pass a ``ManualClock`` so refill does not blur a count.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flotilla.clock import SYSTEM_CLOCK, Clock
from flotilla.outage import Outage
from flotilla.ratelimit.bucket import Decision, MemoryLimiter, Rate

if TYPE_CHECKING:  # redis-py imports its OpenTelemetry support: only a process that talks to Redis pays
    import redis

# KEYS[1] bucket; ARGV: burst, per_second, now ('' = use Redis TIME). Returns {allowed, tokens}.
BUCKET_SCRIPT = """
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


class RedisState:
    """One Redis connection pool and whether it is usable right now, shared by the limiter and the
    quota so one outage is noticed (and logged) once.

    After a failure Redis is not tried again for ``retry_seconds``: during an outage each request
    would otherwise wait out a connect timeout first.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        retry_seconds: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.client = client
        self.outage = Outage(
            "redis",
            "using in-process limits",
            retry_seconds=retry_seconds,
            clock=clock,
            logger=logging.getLogger(__name__),
        )

    @classmethod
    def from_url(cls, url: str, *, timeout_seconds: float = 0.25, **kwargs: Any) -> RedisState:
        import redis

        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            health_check_interval=30,
        )
        return cls(client, **kwargs)

    @property
    def available(self) -> bool:
        return self.outage.worth_trying()

    def failed(self, err: Exception) -> None:
        self.outage.failed(err)

    def succeeded(self) -> None:
        self.outage.succeeded()

    def ping(self) -> None:
        """Readiness check: raise when Redis does not answer."""
        self.client.ping()


def redis_errors() -> tuple[type[Exception], ...]:
    """What a Redis call raises when Redis is down or refuses the call (redis imported on first use)."""
    import redis

    return (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError)


class RedisLimiter:
    """Token buckets in Redis under ``prefix``; ``fallback`` answers while Redis is down."""

    def __init__(
        self,
        state: RedisState,
        *,
        prefix: str = "flotilla:rl:",
        clock: Clock | None = None,
        fallback: MemoryLimiter | None = None,
    ) -> None:
        self.state = state
        self.prefix = prefix
        self._clock = clock
        self.fallback = fallback or MemoryLimiter(clock=clock or SYSTEM_CLOCK)
        self._script = state.client.register_script(BUCKET_SCRIPT)
        self._errors = redis_errors()

    def acquire(self, key: str, rate: Rate) -> Decision:
        if not self.state.available:
            return self.fallback.acquire(key, rate)
        now = "" if self._clock is None else repr(self._clock.time())
        try:
            allowed, tokens = self._script(keys=[self.prefix + key], args=[rate.burst, rate.per_second, now])
        except self._errors as err:
            self.state.failed(err)
            return self.fallback.acquire(key, rate)
        self.state.succeeded()
        return Decision.from_tokens(rate, float(tokens), bool(allowed))
