"""AWS SSM Parameter Store reads, cached with a TTL so hot paths and restarts don't hammer the API."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class ParameterStore:
    """Reads parameters (SecureString decrypted) and caches each answer for ``ttl`` seconds.

    The cache lets code ask for a rotating secret on every request while SSM sees one call per TTL;
    ``clock`` is injectable so tests can move time instead of sleeping.
    """

    def __init__(self, client: Any, ttl: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> str:
        """One parameter's value; raises the client's ``ParameterNotFound`` when absent."""
        return self._cached(("one", name), lambda: self._fetch_one(name))  # type: ignore[no-any-return]

    def get_by_path(self, path: str) -> dict[str, str]:
        """Every parameter directly under ``path``, keyed by the last segment of its name."""
        prefix = path.rstrip("/") + "/"
        return self._cached(("path", prefix), lambda: self._fetch_path(prefix))  # type: ignore[no-any-return]

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def _cached(self, key: tuple[str, str], fetch: Callable[[], Any]) -> Any:
        cache_key = "\0".join(key)
        now = self._clock()
        with self._lock:
            hit = self._cache.get(cache_key)
            if hit and hit[0] > now:
                return hit[1]
        value = fetch()
        with self._lock:
            self._cache[cache_key] = (now + self._ttl, value)
        return value

    def _fetch_one(self, name: str) -> str:
        answer = self._client.get_parameter(Name=name, WithDecryption=True)
        return str(answer["Parameter"]["Value"])

    def _fetch_path(self, prefix: str) -> dict[str, str]:
        values: dict[str, str] = {}
        paginator = self._client.get_paginator("get_parameters_by_path")
        for page in paginator.paginate(Path=prefix, Recursive=False, WithDecryption=True):
            for param in page["Parameters"]:
                values[param["Name"][len(prefix) :]] = param["Value"]
        return values
