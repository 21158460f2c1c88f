"""A payments app per test on its own fresh, migrated Postgres database, called as the orders service."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from services.payments.app import create_app
from services.payments.settings import Settings
from tests.catalog.support import SECRET, GatewayClient
from tests.data.support import fresh_database
from tests.payments.support import migrate


@pytest.fixture
def platform_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLOTILLA_PRINCIPAL_SECRET", SECRET)
    monkeypatch.setenv("FLOTILLA_TRACE_FILE", str(tmp_path / "traces.jsonl"))
    monkeypatch.delenv("FLOTILLA_SSM_ENABLED", raising=False)
    for name in ("FAULT_LATENCY_MS", "FAULT_ERROR_RATE", "FAULT_SEED", "FINGERPRINT_SECRET"):
        monkeypatch.delenv(f"PAYMENTS_{name}", raising=False)


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    with fresh_database(postgres_url) as url:
        migrate(url)
        yield url


@pytest.fixture
def make_app(platform_env: None, database_url: str) -> Callable[..., Any]:
    """An app on this test's database; keyword arguments are settings (``fault_latency_ms=300``)."""

    def make(**overrides: Any) -> Any:
        app = create_app(Settings(database_url=database_url, **overrides))  # type: ignore[arg-type]
        app.test_client_class = GatewayClient  # signs caller() headers per request, as orders would
        return app

    return make


@pytest.fixture
def client(make_app: Callable[..., Any]) -> FlaskClient:
    return make_app().test_client()  # type: ignore[no-any-return]


@pytest.fixture
def serve_app() -> Iterator[Callable[[Any], str]]:
    """Serve an app over HTTP in this process (werkzeug, one thread per request): real concurrency."""
    servers: list[Any] = []

    def start(app: Any) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server, thread in servers:
        server.shutdown()
        thread.join(5)
