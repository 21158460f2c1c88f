"""The cart against moto (its table provisioned from resources.yaml) and a real catalog over HTTP.

The catalog is the real app on a seeded Postgres database, served by werkzeug in a thread for this
module: the cart reaches it through discovery and the ServiceClient exactly as it would in the
stack. Each module gets its own FLOTILLA_ENV, so its own table on the shared moto server.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from werkzeug.serving import make_server

from flotilla.cli import main
from services.cart.app import create_app
from services.cart.settings import Settings
from services.catalog.app import create_app as create_catalog
from tests.catalog.support import SECRET, GatewayClient, caller, migrated_and_seeded, settings
from tests.data.support import fresh_database


@pytest.fixture(scope="module")
def catalog_url(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(postgres_url) as database_url, pytest.MonkeyPatch.context() as env:
        migrated_and_seeded(database_url)
        env.setenv("FLOTILLA_PRINCIPAL_SECRET", SECRET)
        env.setenv("FLOTILLA_TRACE_FILE", str(tmp_path_factory.mktemp("catalog") / "traces.jsonl"))
        app = create_catalog(settings(database_url))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.port}"
        finally:
            server.shutdown()
            thread.join(5)


@pytest.fixture(scope="module")
def env_name(aws_endpoint: str) -> Iterator[str]:
    """This module's environment on the shared moto server, its carts table provisioned once from
    resources.yaml (tests keep apart by using their own user ids)."""
    name = f"t{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FLOTILLA_ENV", name)
        env.setenv("FLOTILLA_AWS_ENDPOINT_URL", aws_endpoint)
        env.setenv("FLOTILLA_AWS_REGION", "us-east-1")
        env.delenv("FLOTILLA_SSM_ENABLED", raising=False)
        result = CliRunner().invoke(main, ["provision", "cart"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    yield name


@pytest.fixture
def cart_env(
    aws_endpoint: str, env_name: str, catalog_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Platform settings for a cart in this module's environment, finding the catalog by static discovery."""
    monkeypatch.setenv("FLOTILLA_ENV", env_name)
    monkeypatch.setenv("FLOTILLA_AWS_ENDPOINT_URL", aws_endpoint)
    monkeypatch.setenv("FLOTILLA_AWS_REGION", "us-east-1")
    monkeypatch.setenv("FLOTILLA_PRINCIPAL_SECRET", SECRET)
    monkeypatch.setenv("FLOTILLA_TRACE_FILE", str(tmp_path / "traces.jsonl"))
    monkeypatch.setenv("FLOTILLA_DISCOVERY", "static")
    monkeypatch.setenv("FLOTILLA_DISCOVERY_STATIC", json.dumps({"catalog": catalog_url}))
    monkeypatch.delenv("FLOTILLA_UPSTREAMS", raising=False)
    monkeypatch.delenv("FLOTILLA_SSM_ENABLED", raising=False)
    return env_name


@pytest.fixture
def alice() -> dict[str, str]:
    """Headers of a shopper with the cart scope; a new user id per test."""
    return caller(f"alice-{uuid.uuid4().hex[:8]}", "cart")


@pytest.fixture
def bob() -> dict[str, str]:
    return caller(f"bob-{uuid.uuid4().hex[:8]}", "cart", "orders")


@pytest.fixture
def make_cart(cart_env: str) -> Callable[..., Any]:
    def make(**overrides: Any) -> Any:
        app = create_app(Settings(**overrides))
        app.test_client_class = GatewayClient  # signs caller() headers per request, as the gateway does
        return app

    return make


@pytest.fixture
def cart(make_cart: Callable[..., Any]) -> Any:
    return make_cart().test_client()


@pytest.fixture
def dynamodb(aws_endpoint: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="us-east-1")
