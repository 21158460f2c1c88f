"""``ServiceClient``: call another service by logical name, with the upstream's policy applied.

Per call: the caller's deadline (or the policy's timeout) bounds everything; the bulkhead admits
the call; then per try: resolve an address, ask the circuit breaker, send with trace context,
request id and remaining deadline, and decide from the outcome whether to retry.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from flask import Flask
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry

from flotilla.clock import SYSTEM_CLOCK, Clock
from flotilla.context import REQUEST_ID_HEADER, current_request_id
from flotilla.discovery.base import DiscoveryError, Resolver
from flotilla.http.breaker import CircuitBreaker, Permit, State
from flotilla.http.bulkhead import Bulkhead
from flotilla.http.deadline import DEADLINE_HEADER, Deadline, current_deadline
from flotilla.http.errors import (
    DeadlineExceeded,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from flotilla.http.metrics import ClientMetrics, client_metrics
from flotilla.http.policy import ClientSettings, UpstreamPolicy, load_client_settings
from flotilla.http.retry import RetryBudget, backoff_for, may_retry, parse_retry_after, retry_condition


class _Upstream:
    """Everything kept per upstream: its policy, breaker, bulkhead, budget and connection pool."""

    def __init__(
        self,
        name: str,
        policy: UpstreamPolicy,
        *,
        clock: Clock,
        rng: random.Random,
        metrics: ClientMetrics,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.name = name
        self.policy = policy
        self.breaker = CircuitBreaker(
            name, policy.circuit_breaker, clock=clock, listeners=(metrics.state_changed,)
        )
        metrics.state_changed(name, State.CLOSED, State.CLOSED)
        self.bulkhead = Bulkhead(name, policy.bulkhead.max_concurrent)
        self.budget = RetryBudget(policy.retries.budget, clock)
        self.backoff = backoff_for(policy.retries, rng)
        size = policy.circuit_breaker.max_connections
        self.http = httpx.Client(
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            transport=transport,
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment between services
        )


_REQUEST_ID_LOWER = REQUEST_ID_HEADER.lower()


@dataclass(frozen=True, slots=True)
class _Call:
    """What the caller asked to send, and the deadline it must be answered by."""

    method: str
    path: str
    params: Mapping[str, Any] | None
    headers: dict[str, str | bytes]
    json: Any
    content: bytes | str | None
    deadline: Deadline


class _Try:
    """The result of one try: a response, or the error that ended it and whether it says anything
    about the upstream's health."""

    __slots__ = ("connect_failed", "error", "response", "verdict")

    def __init__(
        self,
        response: httpx.Response | None = None,
        error: UpstreamError | None = None,
        *,
        connect_failed: bool = False,
        verdict: bool = True,
    ) -> None:
        self.response = response
        self.error = error
        self.connect_failed = connect_failed
        self.verdict = verdict

    @property
    def failed(self) -> bool:
        return self.error is not None or (self.response is not None and self.response.status_code >= 500)

    def result(self) -> httpx.Response:
        if self.error is not None:
            raise self.error
        assert self.response is not None
        return self.response


class ServiceClient:
    """Calls services by logical name: ``client.get("catalog", "/products/42")``.

    An HTTP error status is returned as the response (call ``raise_for_status()`` to raise); the
    call itself raises only the typed ``UpstreamError`` family (circuit open, bulkhead full,
    deadline, timeout, unreachable), each answered as problem+json if it escapes a view.

    Thread-safe; make one per process (or per app with ``init_app``) and share it, since each
    upstream's connection pool, breaker and retry budget live in it.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        settings: ClientSettings | None = None,
        resolver: Resolver | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        registry: CollectorRegistry | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings or load_client_settings()
        if resolver is None:
            from flotilla.discovery.settings import resolver_from_settings

            resolver = resolver_from_settings()
        self.resolver = resolver
        self._clock = clock
        self._random = rng or random.Random()  # noqa: S311 - jitter, not security
        self._transport = transport
        self.metrics = client_metrics(registry)
        self._tracer = trace.get_tracer("flotilla.http.client")
        self._lock = threading.Lock()
        self._upstreams: dict[str, _Upstream] = {}
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Report through the app's ``/metrics``; the client becomes ``app.extensions["flotilla.http"]``."""
        metrics_ext = app.extensions.get("flotilla.metrics")
        registry = getattr(metrics_ext, "registry", None)
        if registry is not None:
            self.metrics = client_metrics(registry)
        app.extensions["flotilla.http"] = self

    def get(self, upstream: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.request(upstream, "GET", path, **kwargs)

    def post(self, upstream: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.request(upstream, "POST", path, **kwargs)

    def put(self, upstream: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.request(upstream, "PUT", path, **kwargs)

    def patch(self, upstream: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.request(upstream, "PATCH", path, **kwargs)

    def delete(self, upstream: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.request(upstream, "DELETE", path, **kwargs)

    def request(
        self,
        upstream: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str | bytes] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send ``method path`` to ``upstream`` and return its answer.

        ``timeout`` (seconds) replaces the policy's ``timeoutSeconds`` for this call; either way
        the current deadline (the incoming request's) still wins when it is sooner.
        """
        up = self._upstream(upstream)
        method = method.upper()
        started = self._clock.monotonic()
        outcome = "error"
        try:
            deadline = self._deadline(up.policy, timeout)
            with up.bulkhead.slot():
                call = _Call(method, path, params, dict(headers or {}), json, content, deadline)
                response = self._call(up, call)
            outcome = f"{response.status_code // 100}xx"
            return response
        except UpstreamError as err:
            outcome = err.outcome
            raise
        finally:
            self.metrics.observe(upstream, method, outcome, self._clock.monotonic() - started)

    def circuit_state(self, upstream: str) -> State:
        return self._upstream(upstream).breaker.state

    def close(self) -> None:
        """Close every upstream's connection pool."""
        with self._lock:
            upstreams, self._upstreams = list(self._upstreams.values()), {}
        for up in upstreams:
            up.http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _upstream(self, name: str) -> _Upstream:
        up = self._upstreams.get(name)
        if up is None:
            with self._lock:
                up = self._upstreams.get(name)
                if up is None:
                    up = _Upstream(
                        name,
                        self.settings.policy(name),
                        clock=self._clock,
                        rng=self._random,
                        metrics=self.metrics,
                        transport=self._transport,
                    )
                    self._upstreams[name] = up
        return up

    def _deadline(self, policy: UpstreamPolicy, timeout: float | None) -> Deadline:
        own = timeout if timeout is not None else policy.timeout_seconds
        inherited = current_deadline()
        if inherited is None:
            return Deadline.after(own, self._clock)
        if inherited.expired:
            raise DeadlineExceeded(detail="the request's deadline passed before the call")
        # The inherited deadline runs on the system clock; keep ours comparable to it.
        return inherited.earlier(own)

    def _call(self, up: _Upstream, call: _Call) -> httpx.Response:
        retries = up.policy.retries
        max_retries = (
            retries.attempts if self.settings.client_retries and may_retry(call.method, call.headers) else 0
        )
        given = {name.lower() for name in call.headers}
        if _REQUEST_ID_LOWER not in given and (request_id := current_request_id()):
            call.headers[REQUEST_ID_HEADER] = request_id
        deadline = call.deadline
        up.budget.record_call()
        retry = 0
        while True:
            remaining = deadline.remaining()
            if remaining <= 0:
                raise DeadlineExceeded(up.name, f"deadline passed before try {retry + 1} to {up.name}")
            try:
                base_url = self.resolver.resolve(up.name)
            except DiscoveryError as err:
                raise UpstreamConnectError(up.name, str(err)) from err
            permit = up.breaker.acquire()
            per_try = retries.per_try_timeout_seconds
            cut_by_deadline = per_try is None or remaining < per_try
            try_timeout = remaining if per_try is None else min(remaining, per_try)
            attempt = self._send(up, call, base_url, try_timeout, retry)
            if cut_by_deadline and isinstance(attempt.error, UpstreamTimeout):
                # Our caller's budget ran out, which says nothing about the upstream's health.
                attempt = _Try(
                    error=DeadlineExceeded(up.name, f"the deadline passed while waiting for {up.name}"),
                    verdict=False,
                )
            self._judge(up.breaker, permit, attempt)
            status = attempt.response.status_code if attempt.response is not None else None
            condition = retry_condition(status, attempt.connect_failed)
            if condition is None or condition not in retries.retry_on or retry >= max_retries:
                return attempt.result()
            retry_after = None
            if attempt.response is not None:
                retry_after = parse_retry_after(
                    attempt.response.headers.get("Retry-After"), self._clock.time()
                )
                if retry_after is not None and retry_after > retries.max_retry_after_seconds:
                    return attempt.response
            delay = up.backoff.delay(retry, retry_after)
            if delay >= deadline.remaining():
                return attempt.result()
            if not up.budget.try_spend():
                self.metrics.budget_spent(up.name)
                return attempt.result()
            self.metrics.retried(up.name, condition)
            self._clock.sleep(delay)
            retry += 1

    def _send(self, up: _Upstream, call: _Call, base_url: str, try_timeout: float, retry: int) -> _Try:
        method = call.method
        url = base_url + call.path
        with self._tracer.start_as_current_span(
            method, kind=SpanKind.CLIENT, record_exception=False, set_status_on_exception=False
        ) as span:
            send_headers = dict(call.headers)
            send_headers[DEADLINE_HEADER] = call.deadline.header_value()
            propagate.inject(send_headers)
            if span.is_recording():
                span.set_attribute("http.request.method", method)
                span.set_attribute("url.full", url)
                span.set_attribute("peer.service", up.name)
                if retry:
                    span.set_attribute("http.request.resend_count", retry)
            try:
                response = up.http.request(
                    method,
                    url,
                    params=call.params,
                    headers=_wire(send_headers),
                    json=call.json,
                    content=call.content,
                    timeout=try_timeout,
                )
            except httpx.TransportError as err:
                attempt = _classify(up.name, err)
                span.set_status(Status(StatusCode.ERROR, type(attempt.error).__name__))
                span.set_attribute("error.type", type(err).__name__)
                return attempt
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return _Try(response)

    @staticmethod
    def _judge(breaker: CircuitBreaker, permit: Permit, attempt: _Try) -> None:
        """Tell the breaker how the try went, unless it says nothing about the upstream (a wait for
        a pooled connection, our own deadline running out): then just free the permit."""
        if not attempt.verdict:
            breaker.release(permit)
        else:
            breaker.record(permit, success=not attempt.failed)


def _classify(upstream: str, err: httpx.TransportError) -> _Try:
    detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    if isinstance(err, httpx.ConnectError | httpx.ConnectTimeout):
        return _Try(error=UpstreamConnectError(upstream, detail), connect_failed=True)
    if isinstance(err, httpx.PoolTimeout):
        return _Try(error=UpstreamTimeout(upstream, f"no free connection: {detail}"), verdict=False)
    if isinstance(err, httpx.TimeoutException):
        return _Try(error=UpstreamTimeout(upstream, detail))
    return _Try(error=UpstreamProtocolError(upstream, detail))


def _wire(headers: Mapping[str, str | bytes]) -> list[tuple[bytes, bytes]]:
    """Headers as the bytes HTTP/1.1 sends: a caller's opaque bytes as they are (a gateway forwarding
    non-ASCII values), text as latin-1, as the WSGI side decoded it."""
    return [
        (name.encode("latin-1"), value if isinstance(value, bytes) else value.encode("latin-1"))
        for name, value in headers.items()
    ]
