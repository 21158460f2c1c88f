"""flotilla.cache against a real Redis: hits and misses counted at the loader, TTL, invalidation by
key and by tag, and what happens while Redis is unreachable."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import pytest

from flotilla.cache import Cache, CacheBackend, CacheSettings, CacheUnavailable, MemoryBackend, RedisBackend
from tests.data.support import closed_port, redis_db


class Counting:
    """A loader that counts its calls and returns a fresh value each time."""

    def __init__(self, value: Any = None) -> None:
        self.calls = 0
        self.value = value

    def __call__(self) -> Any:
        self.calls += 1
        return self.value if self.value is not None else {"n": self.calls}


@pytest.fixture
def live_redis(redis_url: str) -> str:
    return redis_db(redis_url, 2)


@pytest.fixture(params=["redis", "memory"])
def backend(request: pytest.FixtureRequest, live_redis: str) -> CacheBackend:
    return RedisBackend(live_redis) if request.param == "redis" else MemoryBackend()


def new_cache(backend: CacheBackend, **kwargs: Any) -> Cache:
    # A prefix per test: tests share the server and must not see each other's entries.
    return Cache(backend, prefix=f"t{uuid.uuid4().hex[:8]}", **kwargs)


def test_read_through_loads_once_then_hits(backend: CacheBackend) -> None:
    cache = new_cache(backend)
    loader = Counting()
    assert [cache.get_or_load("k", loader) for _ in range(3)] == [{"n": 1}] * 3
    assert loader.calls == 1


def test_entries_expire_after_their_ttl(backend: CacheBackend) -> None:
    cache = new_cache(backend)
    loader = Counting()
    cache.get_or_load("k", loader, ttl=0.2)
    time.sleep(0.3)
    assert cache.get_or_load("k", loader, ttl=0.2) == {"n": 2}


def test_invalidate_by_key_and_by_tag(backend: CacheBackend) -> None:
    cache = new_cache(backend)
    page, item, other = Counting(), Counting(), Counting()

    def read_all() -> None:
        cache.get_or_load("page:1", page, tags=["products"])
        cache.get_or_load("item:A", item, tags=["product:A"])
        cache.get_or_load("other", other)

    read_all()
    cache.invalidate_tags("products")
    read_all()
    assert (page.calls, item.calls, other.calls) == (2, 1, 1)
    cache.invalidate("other")
    cache.invalidate_tags("product:A")
    read_all()
    assert (page.calls, item.calls, other.calls) == (2, 2, 2)


def test_a_write_during_a_load_leaves_no_stale_entry(backend: CacheBackend) -> None:
    """The generation is read before the loader runs: an entry loaded across a write is already stale."""
    cache = new_cache(backend)

    def slow_old_read() -> dict[str, str]:
        cache.invalidate_tags("products")  # the write commits while this reader is loading
        return {"price": "old"}

    assert cache.get_or_load("page", slow_old_read, tags=["products"]) == {"price": "old"}
    assert cache.get_or_load("page", lambda: {"price": "new"}, tags=["products"]) == {"price": "new"}


def test_values_that_are_not_json_are_returned_but_not_cached(backend: CacheBackend) -> None:
    cache = new_cache(backend)
    loader = Counting(value={1, 2})
    assert cache.get_or_load("set", loader) == {1, 2}
    assert cache.get_or_load("set", loader) == {1, 2}
    assert loader.calls == 2


def dead_redis() -> RedisBackend:
    return RedisBackend(f"redis://127.0.0.1:{closed_port()}/0", timeout=0.2)


def test_redis_down_serves_from_the_loader_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    cache = new_cache(dead_redis(), retry_seconds=0.05)
    loader = Counting()
    with caplog.at_level(logging.INFO, logger="flotilla.cache"):
        for _ in range(5):
            cache.get_or_load("k", loader)
            time.sleep(0.02)
        cache.invalidate_tags("products")
    assert loader.calls == 5
    assert not cache.available
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "reading from the source" in warnings[0].getMessage()
    with pytest.raises(CacheUnavailable):
        cache.check()


class CountingBackend:
    """A real (dead) Redis backend that counts the calls the cache makes to it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return attr(*args, **kwargs)

        return counted


def test_skips_redis_between_retries_so_requests_stay_fast() -> None:
    backend = CountingBackend(dead_redis())
    cache = new_cache(backend, retry_seconds=60)  # type: ignore[arg-type]
    cache.get_or_load("k", Counting())
    tried = backend.calls
    assert tried >= 1
    for _ in range(50):
        cache.get_or_load("k", Counting())
    assert backend.calls == tried  # no request waits on the dead server until the retry is due


def test_invalidations_missed_while_down_are_delivered_before_the_next_read(
    live_redis: str, caplog: pytest.LogCaptureFixture
) -> None:
    live = RedisBackend(live_redis)
    cache = new_cache(live, retry_seconds=0.05)
    loader = Counting()
    cache.get_or_load("page", loader, tags=["products"])
    cache.backend = dead_redis()
    cache.invalidate_tags("products")  # the write happens while Redis is unreachable
    cache.backend = live
    time.sleep(0.06)
    with caplog.at_level(logging.INFO, logger="flotilla.cache"):
        assert cache.get_or_load("page", loader, tags=["products"]) == {"n": 2}
    assert cache.available
    assert any("available again" in r.getMessage() for r in caplog.records)
    cache.check()


def test_readyz_reports_the_cache_degraded_not_failed(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from flotilla import create_app
    from flotilla.config import PlatformSettings

    app = create_app("cachetest", platform=PlatformSettings(trace_file=tmp_path / "t.jsonl"))
    settings = CacheSettings(cache_url=f"redis://127.0.0.1:{closed_port()}/0")  # type: ignore[arg-type]
    Cache.from_settings(settings, prefix="cachetest", app=app)
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 200
    assert answer.json["status"] == "degraded"
    assert answer.json["checks"]["cache"] == answer.json["checks"]["cache"] | {
        "state": "degraded",
        "critical": False,
    }


def test_concurrent_readers_all_get_the_value(backend: CacheBackend) -> None:
    cache = new_cache(backend)
    results: list[Any] = []
    lock = threading.Lock()

    def read() -> None:
        value = cache.get_or_load("k", lambda: {"v": 1})
        with lock:
            results.append(value)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [{"v": 1}] * 8
