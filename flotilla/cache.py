"""Read-through cache: get-or-load with a TTL, JSON values, per-service key prefix, invalidation on write.

::

    cache = Cache.from_settings(settings, prefix="catalog", app=app)   # /readyz: "cache", non-critical
    product = cache.get_or_load(f"product:{sku}", lambda: load(sku), tags=[f"product:{sku}"])
    ...
    cache.invalidate_tags(f"product:{sku}", "products")                # after the write commits

**Tags** invalidate groups of entries without knowing their keys (every list or search page that
might show a product): each tag has a generation counter, each entry stores the generations it
was loaded under, and a read that finds a newer generation is a miss. One ``MGET`` fetches the
entry and its generations together, so a hit costs one round trip. Because the generation is read
*before* the loader runs, a write that lands while a reader is loading makes that reader's entry
stale at once: the tag scheme has no window for a stale entry to outlive a write (plain
:meth:`Cache.invalidate`, a ``DEL``, has the classic small one, bounded by the TTL).

**Redis down**: the first failure is logged once, then calls skip Redis for ``retry_seconds``
and go straight to the loader (slower, still correct); the readiness check raises, which
``/readyz`` reports as ``degraded`` because the check is registered non-critical. Invalidations
that could not be sent are kept and replayed before the cache is read again, so the process
never serves an entry it knows is stale. Without a Redis URL an in-process backend is used
(``MemoryBackend``): fine for one process, but other replicas' writes never invalidate it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar, cast

import orjson
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from flotilla.outage import Outage

log = logging.getLogger(__name__)

T = TypeVar("T")

# Generation counters outlive any entry (entries' TTLs are capped below this), so a counter that
# expires and restarts at 0 can never make an old entry look current again.
GENERATION_TTL_SECONDS = 7 * 24 * 3600
MAX_ENTRY_TTL_SECONDS = GENERATION_TTL_SECONDS // 2


class CacheUnavailable(Exception):
    """The backend could not be reached; callers of :class:`Cache` never see it."""


class CacheBackend(Protocol):
    """Storage behind :class:`Cache`: bytes under string keys, with a TTL and atomic counters."""

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    def set(self, key: str, value: bytes, ttl: float) -> None: ...

    def delete(self, keys: Sequence[str]) -> None: ...

    def incr(self, keys: Sequence[str], ttl: float) -> None: ...

    def ping(self) -> None: ...


class RedisBackend:
    """Redis (ElastiCache on AWS). Short timeouts: a cache slower than the database is worse than none."""

    def __init__(self, url: str, *, timeout: float = 0.25) -> None:
        import redis

        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
        )

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except self._errors as err:
            raise CacheUnavailable(f"{type(err).__name__}: {err}") from err

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return self._call(lambda: list(cast("list[bytes | None]", self.client.mget(keys))))

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self._call(lambda: self.client.set(key, value, px=max(1, int(ttl * 1000))))

    def delete(self, keys: Sequence[str]) -> None:
        if keys:
            self._call(lambda: self.client.delete(*keys))

    def incr(self, keys: Sequence[str], ttl: float) -> None:
        def run() -> None:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.incr(key)
                pipe.expire(key, int(ttl))
            pipe.execute()

        self._call(run)

    def ping(self) -> None:
        self._call(self.client.ping)


class MemoryBackend:
    """In-process LRU with expiry: the fallback when no Redis is configured (one process only)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        now = time.monotonic()
        out: list[bytes | None] = []
        with self._lock:
            for key in keys:
                found = self._data.get(key)
                if found is None or found[0] <= now:
                    self._data.pop(key, None)
                    out.append(None)
                else:
                    self._data.move_to_end(key)
                    out.append(found[1])
        return out

    def set(self, key: str, value: bytes, ttl: float) -> None:
        with self._lock:
            self._data[key] = (time.monotonic() + ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def delete(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._data.pop(key, None)

    def incr(self, keys: Sequence[str], ttl: float) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                found = self._data.get(key)
                current = int(found[1]) if found is not None and found[0] > now else 0
                self._data[key] = (now + ttl, str(current + 1).encode())

    def ping(self) -> None:
        return None


class CacheSettings(BaseSettings):
    """Mix into a service's settings (``CATALOG_CACHE_URL``...), like ``flotilla.db.DatabaseSettings``."""

    cache_url: SecretStr | None = Field(
        None, description="redis://host:6379/0 (rediss:// for TLS); unset = in-process cache."
    )
    cache_ttl_seconds: float = Field(60.0, gt=0, le=MAX_ENTRY_TTL_SECONDS, description="Default entry TTL.")
    cache_timeout_seconds: float = Field(0.25, gt=0, description="Redis connect and read timeout.")
    cache_retry_seconds: float = Field(
        5.0, gt=0, description="After a Redis failure, go straight to the source this long before retrying."
    )


class Cache:
    """The read-through cache; thread-safe, one per process (or per app with ``init_app``)."""

    def __init__(
        self,
        backend: CacheBackend,
        *,
        prefix: str,
        default_ttl: float = 60.0,
        retry_seconds: float = 5.0,
        app: Any = None,
    ) -> None:
        self.backend = backend
        self.prefix = prefix
        self.default_ttl = default_ttl
        self._lock = threading.Lock()
        self._outage = Outage(
            f"cache {prefix}", "reading from the source", retry_seconds=retry_seconds, logger=log
        )
        self._pending_keys: set[str] = set()
        self._pending_tags: set[str] = set()
        if app is not None:
            self.init_app(app)

    @classmethod
    def from_settings(cls, settings: CacheSettings, *, prefix: str, app: Any = None) -> Cache:
        """Redis when ``cache_url`` is set, else the in-process backend."""
        backend: CacheBackend
        if settings.cache_url is None:
            backend = MemoryBackend()
        else:
            backend = RedisBackend(
                settings.cache_url.get_secret_value(), timeout=settings.cache_timeout_seconds
            )
        return cls(
            backend,
            prefix=prefix,
            default_ttl=settings.cache_ttl_seconds,
            retry_seconds=settings.cache_retry_seconds,
            app=app,
        )

    def init_app(self, app: Any, *, check_timeout: float = 1.0) -> None:
        """Keep the cache in ``app.extensions["flotilla.cache"]``; add ``cache`` to ``/readyz`` as
        non-critical, since the service still answers (from the source) without it."""
        from flotilla.health import Health

        app.extensions["flotilla.cache"] = self
        Health.of(app).add_check("cache", self.check, critical=False, timeout=check_timeout)

    # --- reading ------------------------------------------------------------------------------

    def get_or_load(
        self, key: str, loader: Callable[[], T], *, ttl: float | None = None, tags: Iterable[str] = ()
    ) -> T:
        """The cached value of ``key``, or ``loader()``'s, stored for ``ttl`` seconds.

        The value must be JSON-serializable (it comes back as JSON types). An exception from the
        loader (a 404, say) propagates and nothing is stored.
        """
        tag_list = sorted(set(tags))
        entry_key = self._key(key)
        generations: list[int] | None = None
        if self._usable():
            try:
                raw = self.backend.get_many([entry_key, *map(self._tag_key, tag_list)])
            except CacheUnavailable as err:
                self._outage.failed(err)
            else:
                self._outage.succeeded()
                generations = [int(g) if g is not None else 0 for g in raw[1:]]
                hit = _decode(raw[0], generations)
                if hit is not _MISS:
                    return hit  # type: ignore[no-any-return]
        value = loader()
        if generations is not None:
            try:
                payload = orjson.dumps({"g": generations, "v": value})
                self.backend.set(entry_key, payload, min(ttl or self.default_ttl, MAX_ENTRY_TTL_SECONDS))
            except CacheUnavailable as err:
                self._outage.failed(err)
            except TypeError:
                log.warning("cache %s: value for %s is not JSON-serializable; not cached", self.prefix, key)
        return value

    # --- invalidating -------------------------------------------------------------------------

    def invalidate(self, *keys: str) -> None:
        """Drop these entries (call after the write commits)."""
        self._send_invalidation(set(keys), set())

    def invalidate_tags(self, *tags: str) -> None:
        """Make every entry loaded under any of these tags stale (call after the write commits)."""
        self._send_invalidation(set(), set(tags))

    def _send_invalidation(self, keys: set[str], tags: set[str]) -> None:
        with self._lock:
            self._pending_keys |= keys
            self._pending_tags |= tags
        if self._usable(ignore_pending=True):
            self._flush_pending()

    def _flush_pending(self) -> bool:
        """Send the invalidations not yet delivered; True when none are left."""
        with self._lock:
            keys, tags = sorted(self._pending_keys), sorted(self._pending_tags)
        if not keys and not tags:
            return True
        try:
            self.backend.delete([self._key(k) for k in keys])
            self.backend.incr([self._tag_key(t) for t in tags], GENERATION_TTL_SECONDS)
        except CacheUnavailable as err:
            self._outage.failed(err)
            return False
        with self._lock:
            self._pending_keys -= set(keys)
            self._pending_tags -= set(tags)
        self._outage.succeeded()
        return True

    # --- health -------------------------------------------------------------------------------

    def check(self) -> None:
        """Readiness: ping the backend (raises when unreachable) and deliver pending invalidations."""
        try:
            self.backend.ping()
        except CacheUnavailable as err:
            self._outage.failed(err)
            raise
        self._outage.succeeded()
        if not self._flush_pending():
            raise CacheUnavailable("pending invalidations could not be delivered")

    @property
    def available(self) -> bool:
        """False while the backend is known to be down."""
        return not self._outage.down

    def _usable(self, *, ignore_pending: bool = False) -> bool:
        if not self._outage.worth_trying():
            return False
        if ignore_pending or not (self._pending_keys or self._pending_tags):
            return True
        # A write's invalidation has not reached the cache yet: deliver it before trusting a read.
        return self._flush_pending()

    def _key(self, key: str) -> str:
        return f"{self.prefix}:v:{key}"

    def _tag_key(self, tag: str) -> str:
        return f"{self.prefix}:t:{tag}"


_MISS = object()


def _decode(raw: bytes | None, generations: list[int]) -> Any:
    if raw is None:
        return _MISS
    try:
        entry = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _MISS
    if not isinstance(entry, dict) or entry.get("g") != generations:
        return _MISS
    return entry.get("v")


def cache_of(app: Any) -> Cache:
    """The app's ``Cache`` (registered by ``Cache.init_app``)."""
    found: Cache = app.extensions["flotilla.cache"]
    return found


__all__ = [
    "Cache",
    "CacheBackend",
    "CacheSettings",
    "CacheUnavailable",
    "MemoryBackend",
    "RedisBackend",
    "cache_of",
]
