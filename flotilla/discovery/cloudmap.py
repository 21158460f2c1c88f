"""AWS Cloud Map discovery: DiscoverInstances (healthy only), cached, last known good on failure.

The API is called at most once per TTL per name, so a busy client does not pay a network round trip
per call nor hit the API's rate limit; when the API fails, the instances it last returned are used
(the instances themselves are usually fine when the control plane hiccups).
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from flotilla.clock import SYSTEM_CLOCK, Clock
from flotilla.discovery.base import DiscoveryError, NoHealthyInstances
from flotilla.outage import Outage

log = logging.getLogger(__name__)

Choice = Literal["random", "round-robin"]
API_ERRORS = (BotoCoreError, ClientError)


@dataclass
class _Entry:
    """One name's last answer: fresh until ``refresh_at``; after that refreshed when ``outage``
    (kept across refreshes, dropped with the entry) says the API is worth asking again."""

    urls: tuple[str, ...]
    refresh_at: float
    outage: Outage
    refreshing: bool = False
    turn: Iterator[int] = field(default_factory=itertools.count)


class CloudMapResolver:
    """Resolves ``name`` to one healthy instance of the Cloud Map service ``name`` in ``namespace``.

    Instances need ``AWS_INSTANCE_IPV4`` (or ``AWS_INSTANCE_IPV6``/``AWS_INSTANCE_CNAME``) and
    optionally ``AWS_INSTANCE_PORT`` attributes, which is what RegisterInstance and the EKS/ECS
    integrations write. After a failed refresh the resolver waits ``retry_seconds`` (at most the
    TTL) before asking again, so a control-plane outage is not met with a request per call; each
    name's outage is tracked (and logged once) by a :class:`~flotilla.outage.Outage`.
    """

    def __init__(
        self,
        client: Any,
        namespace: str,
        *,
        ttl_seconds: float = 10.0,
        retry_seconds: float = 1.0,
        choice: Choice = "round-robin",
        default_port: int = 80,
        scheme: str = "http",
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self.namespace = namespace
        self.ttl = ttl_seconds
        self.retry_seconds = min(retry_seconds, ttl_seconds)
        self.choice = choice
        self.default_port = default_port
        self.scheme = scheme
        self._clock = clock
        self._random = rng or random.Random()  # noqa: S311 - load spreading, not security
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def resolve(self, name: str) -> str:
        entry = self._entry(name)
        if not entry.urls:
            raise NoHealthyInstances(f"Cloud Map has no healthy instance of {name!r} in {self.namespace!r}")
        if self.choice == "random":
            return self._random.choice(entry.urls)
        return entry.urls[next(entry.turn) % len(entry.urls)]

    def instances(self, name: str) -> tuple[str, ...]:
        """Base URLs of the healthy instances, as cached."""
        return self._entry(name).urls

    def invalidate(self, name: str | None = None) -> None:
        """Forget cached answers (all, or one name's): the next resolve asks the API."""
        with self._lock:
            if name is None:
                self._entries.clear()
            else:
                self._entries.pop(name, None)

    def _entry(self, name: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None and (
                entry.refreshing
                or self._clock.monotonic() < entry.refresh_at
                or not entry.outage.worth_trying()
            ):
                return entry  # fresh, another thread is refreshing, or the API failed just now
            if entry is not None:
                entry.refreshing = True
        try:
            urls = self._discover(name)
        except API_ERRORS as err:
            return self._refresh_failed(name, entry, err)
        except BaseException:
            if entry is not None:
                with self._lock:
                    entry.refreshing = False
            raise
        outage = entry.outage if entry is not None else self._outage(name)
        fresh = _Entry(urls, self._clock.monotonic() + self.ttl, outage)
        if entry is not None:
            fresh.turn = entry.turn
        with self._lock:
            self._entries[name] = fresh
        outage.succeeded()
        return fresh

    def _refresh_failed(self, name: str, entry: _Entry | None, err: Exception) -> _Entry:
        if entry is None:
            raise DiscoveryError(f"Cloud Map lookup of {name!r} in {self.namespace!r} failed: {err}") from err
        entry.outage.failed(err)  # before ``refreshing`` clears, so no other thread asks meanwhile
        with self._lock:
            entry.refreshing = False
        return entry

    def _outage(self, name: str) -> Outage:
        return Outage(
            f"Cloud Map lookup of {name} in {self.namespace}",
            "using the instances last seen",
            retry_seconds=self.retry_seconds,
            clock=self._clock,
            logger=log,
            log_extra={"upstream": name},
        )

    def _discover(self, name: str) -> tuple[str, ...]:
        answer = self._client.discover_instances(
            NamespaceName=self.namespace, ServiceName=name, HealthStatus="HEALTHY", MaxResults=100
        )
        urls = [self._url(instance.get("Attributes", {})) for instance in answer.get("Instances", [])]
        return tuple(sorted(url for url in urls if url))

    def _url(self, attributes: Mapping[str, str]) -> str | None:
        port = attributes.get("AWS_INSTANCE_PORT") or str(self.default_port)
        if host := attributes.get("AWS_INSTANCE_IPV4") or attributes.get("AWS_INSTANCE_CNAME"):
            return f"{self.scheme}://{host}:{port}"
        if host := attributes.get("AWS_INSTANCE_IPV6"):
            return f"{self.scheme}://[{host}]:{port}"
        return None
