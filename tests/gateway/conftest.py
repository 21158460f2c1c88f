"""Real parts behind a gateway under test: a dev issuer's JWKS, upstream apps and the gateway itself,
each a threaded werkzeug server on a loopback port the kernel picked (xdist-safe)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, jsonify, request
from flotilla_dev.issuer import DevIssuer, create_issuer_app
from werkzeug.serving import make_server

from flotilla.clock import Clock
from flotilla.config import PlatformSettings
from flotilla.discovery import StaticResolver
from flotilla.http import ServiceClient
from flotilla.http.policy import ClientSettings, UpstreamPolicy
from flotilla.principal import request_target
from services.gateway.app import create_app
from services.gateway.settings import Settings
from tests.support import free_port

# 32 characters at least: the gateway under test runs in FLOTILLA_ENV=test, not local.
SECRET = "gateway-test-secret-long-enough-to-be-a-key"
CLIENT_ID = "store-web"
AUDIENCE = "store-web-id"


class Running:
    def __init__(self, app: Any) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def echo_app(name: str) -> Flask:
    """An upstream that answers with what it received, and an API document of its own."""
    app = Flask(name)

    @app.route("/", defaults={"path": ""}, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
    @app.route("/<path:path>", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
    def echo(path: str) -> Response:
        if path == "openapi.json":
            return jsonify(
                openapi="3.1.0",
                info={"title": f"{name} API", "version": "1"},
                paths={
                    "/items/{item_id}": {
                        "get": {
                            "operationId": "get_item",
                            "responses": {
                                "200": {
                                    "description": "ok",
                                    "content": {
                                        "application/json": {"schema": {"$ref": "#/components/schemas/Item"}}
                                    },
                                }
                            },
                        }
                    },
                    "/v2/items": {
                        "post": {"operationId": "add_item", "responses": {"201": {"description": "made"}}}
                    },
                },
                components={
                    "schemas": {"Item": {"type": "object", "properties": {"id": {"type": "string"}}}}
                },
            )
        response = jsonify(
            service=name,
            method=request.method,
            path=request.full_path if request.query_string else request.path,
            target=request_target(request.environ),  # what a signature for this request must cover
            headers=dict(request.headers),
            body=request.get_data(as_text=True),
        )
        for key, value in request.args.items():
            if key.startswith("answer-"):
                response.headers[key.removeprefix("answer-")] = value
        return response

    return app


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevIssuer]:
    directory: Path = tmp_path_factory.mktemp("dev-issuer")
    port = free_port()
    keys = DevIssuer(directory, url=f"http://127.0.0.1:{port}", client_id=CLIENT_ID)
    keys.jwks()
    server = make_server("127.0.0.1", port, create_issuer_app(keys), threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield keys
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, str]]:
    """Logical name -> URL: two live echo services and one address nobody listens on."""
    catalog, catalog_v2 = Running(echo_app("catalog")), Running(echo_app("catalog-v2"))
    yield {"catalog": catalog.url, "catalog-v2": catalog_v2.url, "down": f"http://127.0.0.1:{free_port()}"}
    catalog.stop()
    catalog_v2.stop()


ROUTES = {
    "v1": {
        "catalog": {"upstream": "catalog", "read": "public", "write": "admin"},
        "cart": {"upstream": "catalog", "read": "cart", "write": "cart"},
        "down": {"upstream": "down", "read": "public"},
    },
    "v2": {"catalog": {"upstream": "catalog-v2", "prefix": "/v2", "read": "public", "write": "admin"}},
}


@pytest.fixture
def gateway(issuer: DevIssuer, upstreams: dict[str, str]) -> Iterator[Callable[..., str]]:
    """``gateway(clock=..., platform={...}, GATEWAY field=value...)`` -> the URL of a running gateway."""
    running: list[tuple[Running, ServiceClient]] = []

    def start(clock: Clock | None = None, platform: dict[str, Any] | None = None, **fields: Any) -> str:
        settings = Settings(
            **{
                "routes": ROUTES,
                "jwt_issuer": issuer.url,
                "jwt_client_ids": [CLIENT_ID],
                "jwt_audiences": [AUDIENCE],
                "jwks_min_refresh_seconds": 0,
                **fields,
            }
        )
        policy = UpstreamPolicy.model_validate(
            {"retries": {"attempts": 0}, "circuitBreaker": {"consecutiveFailures": 2, "openSeconds": 60}}
        )
        client = ServiceClient(
            settings=ClientSettings(upstreams={"down": policy}, client_retries=True),
            resolver=StaticResolver(upstreams),
        )
        platform_settings = PlatformSettings(
            **{"principal_secret": SECRET, "env": "test", "access_log": False, **(platform or {})}
        )
        app = create_app(settings, platform=platform_settings, client=client, clock=clock)
        server = Running(app)
        running.append((server, client))
        return server.url

    yield start
    for server, client in running:
        server.stop()
        client.close()
