"""Throttling per client per route, and the daily quota of API keys.

Headers follow draft-ietf-httpapi-ratelimit-headers-07 (the three separate fields):
``RateLimit-Limit`` is the bucket size, ``RateLimit-Remaining`` the requests left right now and
``RateLimit-Reset`` the seconds until the bucket is full again. A refused request also gets
``Retry-After``: the seconds until one request will be admitted. Both are whole seconds, rounded up.
"""

from __future__ import annotations

import math

from flotilla.clock import Clock
from flotilla.errors import ProblemError
from flotilla.ratelimit import DailyQuota, Decision, Limiter, MemoryLimiter, Rate, RedisLimiter, RedisState
from services.gateway.auth import Caller
from services.gateway.settings import RateSpec, RouteSpec, Settings


def _seconds(value: float) -> str:
    return str(max(0, math.ceil(value)))


def rate_headers(decision: Decision) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": _seconds(decision.reset_seconds),
    }


class Throttle:
    """``admit(caller, route_key, route, client_ip)``: headers for the answer, or a 429 raised."""

    def __init__(self, limiter: Limiter, quota: DailyQuota, default: RateSpec) -> None:
        self.limiter = limiter
        self.quota = quota
        self.default = default

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock | None = None) -> Throttle:
        """Redis when ``GATEWAY_REDIS_URL`` is set, else buckets in this process. ``clock`` (tests)
        replaces both Redis' time and the system clock."""
        from flotilla.clock import SYSTEM_CLOCK

        local = MemoryLimiter(clock=clock or SYSTEM_CLOCK)
        if settings.redis_url is None:
            return cls(local, DailyQuota(clock=clock or SYSTEM_CLOCK), settings.rate_limit)
        state = RedisState.from_url(settings.redis_url.get_secret_value())
        limiter = RedisLimiter(state, clock=clock, fallback=local)
        return cls(limiter, DailyQuota(state, clock=clock or SYSTEM_CLOCK), settings.rate_limit)

    @property
    def redis(self) -> RedisState | None:
        return self.limiter.state if isinstance(self.limiter, RedisLimiter) else None

    def admit(self, caller: Caller, route_key: str, route: RouteSpec, client_ip: str) -> dict[str, str]:
        spec = (caller.api_key.rate_limit if caller.api_key else None) or route.rate_limit or self.default
        decision = self.limiter.acquire(
            f"{route_key}|{caller.throttle_key(client_ip)}", Rate(spec.burst, spec.per_second)
        )
        headers = rate_headers(decision)
        if not decision.allowed:
            headers["Retry-After"] = _seconds(max(1.0, decision.retry_after_seconds))
            raise ProblemError(
                429,
                "Too Many Requests",
                f"more than {spec.burst} requests at once or {spec.per_second:g}/s to {route_key}",
                type="urn:flotilla:problem:rate-limited",
                headers=headers,
            )
        if caller.api_key is not None and caller.api_key.daily_quota is not None:
            used = self.quota.take(caller.client, caller.api_key.daily_quota)
            if not used.allowed:
                raise ProblemError(
                    429,
                    "Quota exhausted",
                    f"the API key's daily quota of {used.limit} requests is used up",
                    type="urn:flotilla:problem:quota-exhausted",
                    headers={"Retry-After": _seconds(used.reset_seconds)},
                )
        return headers
