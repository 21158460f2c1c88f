"""The catalog's read-through cache in a real Redis: reads skip the database until a write invalidates
them; without Redis the catalog still answers and reports itself degraded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from flotilla.db import database
from tests.catalog.support import admin
from tests.data.support import closed_port

pytestmark = pytest.mark.usefixtures("seeded")


class Queries:
    """Counts SELECTs the app sends to its database: the loader calls behind the cache."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "SELECT 1" not in statement:
            self.count += 1

    def during(self, fn: Any) -> int:
        before = self.count
        fn()
        return self.count - before


@pytest.fixture
def app(make_app: Any) -> Iterator[Any]:
    yield make_app()


def test_reads_hit_the_cache_until_a_write_invalidates_them(app: Any) -> None:
    client = app.test_client()
    queries = Queries(database(app).engine)
    list_page = lambda: client.get("/products?category=tea&limit=5")  # noqa: E731
    one = lambda: client.get("/products/TEA-0001")  # noqa: E731

    assert queries.during(list_page) == 1
    assert queries.during(one) == 1
    assert queries.during(list_page) == 0
    assert queries.during(one) == 0

    client.patch("/products/TEA-0001", json={"price_cents": 1999}, headers=admin())
    assert queries.during(one) == 1
    assert one().json["price_cents"] == 1999
    assert queries.during(list_page) == 1
    assert queries.during(lambda: client.get("/products/TEA-0002")) == 1  # its own entry: untouched but cold
    assert queries.during(lambda: client.get("/products/TEA-0002")) == 0


def test_a_write_to_one_product_keeps_other_products_cached(app: Any) -> None:
    client = app.test_client()
    queries = Queries(database(app).engine)
    client.get("/products/COF-0002")
    client.patch("/products/COF-0001", json={"stock": 1}, headers=admin())
    assert queries.during(lambda: client.get("/products/COF-0002")) == 0


def test_two_replicas_share_invalidation_through_redis(make_app: Any) -> None:
    reader, writer = make_app().test_client(), make_app().test_client()
    assert reader.get("/products/PAN-0001").json["price_cents"] == 990
    writer.patch("/products/PAN-0001", json={"price_cents": 1090}, headers=admin())
    assert reader.get("/products/PAN-0001").json["price_cents"] == 1090


def test_redis_down_still_answers_and_readyz_is_degraded(make_app: Any) -> None:
    app = make_app(cache_url=f"redis://127.0.0.1:{closed_port()}/0", cache_timeout_seconds=0.2)
    client = app.test_client()
    assert client.get("/products?limit=5").status_code == 200
    assert client.get("/products/COF-0001").status_code == 200
    assert client.patch("/products/COF-0001", json={"stock": 2}, headers=admin()).status_code == 200
    assert client.get("/products/COF-0001").json["stock"] == 2
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["status"] == "degraded"
    assert ready.json["checks"]["cache"]["state"] == "degraded"
    assert ready.json["checks"]["database"]["state"] == "ok"


def test_database_down_fails_readiness(make_app: Any) -> None:
    app = make_app(database_url=f"postgresql://x@127.0.0.1:{closed_port()}/x")
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503
    assert ready.json["checks"]["database"]["state"] == "failed"
