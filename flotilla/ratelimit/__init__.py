"""Token-bucket throttling and daily quotas, in Redis (shared by every replica) or in process.

``MemoryLimiter`` and ``RedisLimiter`` answer the same ``acquire(key, rate)``; ``RedisLimiter`` runs
the bucket as one Lua script (atomic across replicas) and falls back to an in-process limiter while
Redis is unreachable, so an outage of the cache degrades the limits to per-process ones instead
of failing requests. ``DailyQuota`` counts per key per UTC day the same two ways.
"""

from flotilla.ratelimit.bucket import Decision, Limiter, MemoryLimiter, Rate
from flotilla.ratelimit.quota import DailyQuota, QuotaDecision
from flotilla.ratelimit.redis_store import RedisLimiter, RedisState

__all__ = [
    "DailyQuota",
    "Decision",
    "Limiter",
    "MemoryLimiter",
    "QuotaDecision",
    "Rate",
    "RedisLimiter",
    "RedisState",
]
