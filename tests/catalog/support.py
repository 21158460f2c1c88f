"""Building a real catalog for tests: a migrated (and optionally seeded) database, the app, signed callers."""

from __future__ import annotations

from typing import Any

import redis
import sqlalchemy as sa

from flotilla.principal import Principal, sign
from services.catalog import service
from services.catalog.seed import seed
from services.catalog.settings import Settings

SECRET = "catalog-tests-principal-secret"


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
    """Headers the gateway would add for this caller (signed with the tests' principal secret)."""
    return sign(Principal(subject, frozenset(scopes)), SECRET)


def admin() -> dict[str, str]:
    return caller("ops", "admin")
