"""Talking to a real payments app in tests: signed callers, POSTs with keys, and reading its tables."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from flotilla.principal import CLIENT
from services.payments import service
from tests.catalog.support import caller

AUTHORIZATIONS = "/payments/authorizations"
APPROVE = "4242424242424242"
DECLINE = "4000000000000002"
INSUFFICIENT = "4000000000009995"
SLOW = "4000000000000259"
SERVER_ERROR = "4000000000000119"
UNKNOWN_VALID = "4111111111111111"  # passes the Luhn check, not a test card
TEST_CARDS = (APPROVE, DECLINE, INSUFFICIENT, SLOW, SERVER_ERROR)
PROBLEM_JSON = "application/problem+json"


def orders() -> dict[str, str]:
    """The orders service calling, as it signs its own calls: client ``orders``, scope ``payments``."""
    headers = caller("orders", "payments")
    headers[CLIENT] = "orders"
    return headers


def key() -> str:
    return f"test-{uuid.uuid4().hex}"


def body(card: str = APPROVE, **changes: Any) -> dict[str, Any]:
    return {
        "order_id": f"ord-{uuid.uuid4().hex[:12]}",
        "amount_cents": 4200,
        "currency": "USD",
        "card": card,
    } | changes


def with_key(headers: dict[str, str], idempotency_key: str | None, **extra: str) -> dict[str, str]:
    found = dict(headers) | extra
    if idempotency_key is not None:
        found["Idempotency-Key"] = idempotency_key
    return found


def migrate(database_url: str) -> None:
    with engine(database_url) as db:
        assert service.migrations is not None
        service.migrations.upgrade(db)


@contextmanager
def engine(database_url: str) -> Iterator[sa.Engine]:
    db = sa.create_engine(database_url)
    try:
        yield db
    finally:
        db.dispose()


def rows(database_url: str, table: str) -> list[dict[str, Any]]:
    with engine(database_url) as db, db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {table}"))]


def held(database_url: str, idempotency_key: str, timeout: float = 5.0) -> dict[str, Any]:
    """The key's row once a request has claimed it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in rows(database_url, "idempotency_keys") if r["key"] == idempotency_key]
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"no request claimed {idempotency_key}")
