"""A real upstream for client tests: a small Flask app under werkzeug's threaded server on loopback.

Each test scripts the answers it wants under its own key, so one server serves the whole module and
tests stay independent (and xdist-safe: the port is the kernel's choice).
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterator

import pytest
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from flotilla.clock import ManualClock
from flotilla.discovery import StaticResolver
from flotilla.http import ServiceClient
from flotilla.http.policy import ClientSettings, UpstreamPolicy
from tests.support import free_port


class Upstream:
    """The scripted server: ``script(key, [(status, headers), ...])``, then count ``hits(key)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, list[tuple[int, dict[str, str]]]] = defaultdict(list)
        self._hits: dict[str, int] = defaultdict(int)
        self.entered: dict[str, threading.Event] = defaultdict(threading.Event)
        self.release: dict[str, threading.Event] = defaultdict(threading.Event)
        self.url = ""

    def script(self, key: str, answers: list[tuple[int, dict[str, str]] | int]) -> None:
        with self._lock:
            self._scripts[key] = [a if isinstance(a, tuple) else (a, {}) for a in answers]

    def hits(self, key: str) -> int:
        return self._hits[key]

    def app(self) -> Flask:
        app = Flask("upstream")

        @app.route("/script/<key>", methods=["GET", "POST", "PUT", "DELETE"])
        def scripted(key: str) -> Response:
            with self._lock:
                self._hits[key] += 1
                status, headers = self._scripts[key].pop(0) if self._scripts[key] else (200, {})
            response = jsonify(key=key, hit=self._hits[key])
            response.status_code = status
            response.headers.update(headers)
            return response

        @app.get("/headers")
        def headers() -> Response:
            return jsonify(dict(request.headers))

        @app.get("/block/<key>")
        def block(key: str) -> Response:
            self.entered[key].set()
            self.release[key].wait(10)
            return jsonify(key=key)

        @app.get("/sleep")
        def sleep() -> Response:
            time.sleep(float(request.args.get("seconds", "1")))
            return jsonify(slept=True)

        return app


class Highest(random.Random):
    """Jitter always at its ceiling, so a backoff schedule is exact (the backoff draws ``random()``
    as the fraction of its ceiling to wait)."""

    def random(self) -> float:
        return 1.0


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    state = Upstream()
    server = make_server("127.0.0.1", 0, state.app(), threaded=True)
    state.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        for event in state.release.values():
            event.set()
        server.shutdown()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_client(upstream: Upstream, clock: ManualClock) -> Iterator[object]:
    """``make_client(policy={...camelCase...}, retries=True)``: a client whose ``svc`` is the
    scripted server and whose ``down`` is a loopback port nobody listens on."""
    made: list[ServiceClient] = []
    down = f"http://127.0.0.1:{free_port()}"

    def make(policy: dict | None = None, retries: bool = True) -> ServiceClient:
        parsed = UpstreamPolicy.model_validate(policy or {})
        settings = ClientSettings(upstreams={"svc": parsed, "down": parsed}, client_retries=retries)
        client = ServiceClient(
            settings=settings,
            resolver=StaticResolver({"svc": upstream.url, "down": down}),
            clock=clock,
            rng=Highest(),
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
