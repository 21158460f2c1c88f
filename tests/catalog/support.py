"""Building a real catalog for tests: a migrated (and optionally seeded) database, the app, signed callers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
import sqlalchemy as sa
from flask.testing import EnvironBuilder, FlaskClient
from werkzeug.datastructures import Headers
from werkzeug.test import TestResponse

from flotilla.principal import CLIENT, HEADERS, SCOPES, SIGNATURE, SUBJECT, Principal, request_target, sign
from services.catalog import service
from services.catalog.seed import seed
from services.catalog.settings import Settings

# 32 characters at least: the cart tests run in their own FLOTILLA_ENV, not local.
SECRET = "catalog-tests-principal-secret-of-42-chars"
# Where caller() leaves the signature: a GatewayClient signs such headers for the request it sends.
TO_BE_SIGNED = "to-be-signed-by-the-gateway-client"


def settings(database_url: str, cache_url: str | None = None, **extra: Any) -> Settings:
    return Settings(database_url=database_url, cache_url=cache_url, **extra)  # type: ignore[arg-type]


def migrate(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        service.migrations.upgrade(engine)
    finally:
        engine.dispose()


def migrated_and_seeded(database_url: str) -> None:
    migrate(database_url)
    seed(settings(database_url))


def flush(cache_url: str) -> None:
    redis.Redis.from_url(cache_url).flushdb()


def caller(subject: str, *scopes: str) -> dict[str, str]:
    """This caller's identity headers, unsigned yet: a ``GatewayClient`` signs them for each request
    it sends, as the gateway would; ``signed`` does it for one request sent another way."""
    return {SUBJECT: subject, SCOPES: " ".join(sorted(scopes)), CLIENT: "", SIGNATURE: TO_BE_SIGNED}


def signed(headers: Mapping[str, str], audience: str, method: str, path: str) -> dict[str, str]:
    """``headers`` with the caller in them signed (the tests' principal secret) for one request."""
    principal = Principal(headers[SUBJECT], frozenset(headers[SCOPES].split()), headers.get(CLIENT, ""))
    others = {name: value for name, value in headers.items() if name not in HEADERS}
    return others | sign(principal, SECRET, audience=audience, method=method, path=path)


class GatewayClient(FlaskClient):
    """A test client that plays the gateway: headers from ``caller`` are signed for the very request
    it sends (its method, and its target as the service computes it); other headers go as given, so
    forged or replayed ones stay forged or replayed."""

    def open(
        self, *args: Any, buffered: bool = False, follow_redirects: bool = False, **kwargs: Any
    ) -> TestResponse:
        headers = kwargs.get("headers")
        if headers is not None and Headers(headers).get(SIGNATURE) == TO_BE_SIGNED:
            builder = EnvironBuilder(self.application, *args, **kwargs)
            try:
                environ = builder.get_environ()
            finally:
                builder.close()
            target = request_target(environ)
            kwargs["headers"] = signed(
                dict(headers), self.application.name, environ["REQUEST_METHOD"], target
            )
        return super().open(*args, buffered=buffered, follow_redirects=follow_redirects, **kwargs)


def admin() -> dict[str, str]:
    return caller("ops", "admin")
