"""Prometheus metrics of outgoing calls, per upstream: outcomes, latency, retries, circuit state.

Metric objects are made once per registry and shared by every client using it: registering a name
twice fails, and in multiprocess mode (gunicorn) two objects with one name would overwrite each
other's value in the process's file.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from flotilla.http.breaker import State
from flotilla.metrics import LATENCY_BUCKETS


class ClientMetrics:
    """``http_client_*`` series; ``registry=None`` leaves them unregistered (multiprocess mode)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        kwargs: dict[str, Any] = {"registry": registry}
        self.registry = registry
        self.requests = Counter(
            "http_client_requests",
            "Calls to upstreams by outcome: a status class (2xx..5xx) or the error that ended the call.",
            ["upstream", "method", "outcome"],
            **kwargs,
        )
        self.duration = Histogram(
            "http_client_request_duration_seconds",
            "Time from call to answer, retries and backoff included.",
            ["upstream"],
            buckets=LATENCY_BUCKETS,
            **kwargs,
        )
        self.retries = Counter(
            "http_client_retries",
            "Retries sent, by the condition that caused them.",
            ["upstream", "reason"],
            **kwargs,
        )
        self.budget_exhausted = Counter(
            "http_client_retry_budget_exhausted",
            "Retries not sent because the upstream's retry budget was spent.",
            ["upstream"],
            **kwargs,
        )
        self.circuit_state = Gauge(
            "http_client_circuit_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open (worst live worker).",
            ["upstream"],
            multiprocess_mode="livemax",
            **kwargs,
        )
        self._children: dict[tuple[str, ...], Any] = {}

    def observe(self, upstream: str, method: str, outcome: str, seconds: float) -> None:
        key = (upstream, method, outcome)
        counter = self._children.get(key)
        if counter is None:
            counter = self._children[key] = self.requests.labels(upstream, method, outcome)
        counter.inc()
        hist_key = (upstream,)
        histogram = self._children.get(hist_key)
        if histogram is None:
            histogram = self._children[hist_key] = self.duration.labels(upstream)
        histogram.observe(seconds)

    def retried(self, upstream: str, reason: str) -> None:
        self.retries.labels(upstream, reason).inc()

    def budget_spent(self, upstream: str) -> None:
        self.budget_exhausted.labels(upstream).inc()

    def state_changed(self, upstream: str, old: State, new: State) -> None:
        self.circuit_state.labels(upstream).set(int(new))


_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, ClientMetrics] = weakref.WeakKeyDictionary()
_unregistered: dict[int, ClientMetrics] = {}


def client_metrics(registry: CollectorRegistry | None = None) -> ClientMetrics:
    """The metrics for ``registry``, made on first use.

    Under multiprocess mode (gunicorn) there is one unregistered set per process whatever the
    registry: values live in files and the scrape reads them all. Otherwise, with no registry, a
    private one, so tests building many clients never collide in the global registry.
    """
    with _lock:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            pid = os.getpid()
            if pid not in _unregistered:
                _unregistered.clear()
                _unregistered[pid] = ClientMetrics(None)
            return _unregistered[pid]
        if registry is None:
            return ClientMetrics(CollectorRegistry(auto_describe=True))
        found = _by_registry.get(registry)
        if found is None:
            found = _by_registry[registry] = ClientMetrics(registry)
        return found
