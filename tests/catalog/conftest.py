"""A catalog app per test on its own fresh Postgres database, caching in a real Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from services.catalog.app import create_app
from tests.catalog.support import SECRET, GatewayClient, flush, migrate, seed, settings
from tests.data.support import fresh_database, redis_db


@pytest.fixture
def platform_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLOTILLA_PRINCIPAL_SECRET", SECRET)
    monkeypatch.setenv("FLOTILLA_TRACE_FILE", str(tmp_path / "traces.jsonl"))


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    with fresh_database(postgres_url) as url:
        migrate(url)
        yield url


@pytest.fixture
def cache_url(redis_url: str) -> str:
    url = redis_db(redis_url, 3)
    flush(url)  # this worker's server, this suite's database: nothing from an earlier test survives
    return url


@pytest.fixture
def make_app(platform_env: None, database_url: str, cache_url: str) -> Callable[..., Any]:
    def make(**overrides: Any) -> Any:
        values = {"database_url": database_url, "cache_url": cache_url} | overrides
        app = create_app(settings(**values))
        app.test_client_class = GatewayClient  # signs caller() headers per request, as the gateway does
        return app

    return make


@pytest.fixture
def client(make_app: Callable[..., Any]) -> FlaskClient:
    return make_app().test_client()  # type: ignore[no-any-return]


@pytest.fixture
def seeded(database_url: str) -> str:
    seed(settings(database_url))
    return database_url
