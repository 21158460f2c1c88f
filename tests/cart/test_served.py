"""Catalog and cart as real ``flotilla serve`` processes (gunicorn), wired by static discovery:
the cart checks items against the catalog over HTTP, and one trace spans both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.catalog.support import caller, flush, migrated_and_seeded, signed
from tests.data.support import fresh_database, redis_db
from tests.support import serve

pytestmark = pytest.mark.slow


def test_cart_and_catalog_served(postgres_url: str, redis_url: str, cart_env: str, tmp_path: Path) -> None:
    cache_url = redis_db(redis_url, 4)
    flush(cache_url)
    with fresh_database(postgres_url) as database_url:
        migrated_and_seeded(database_url)
        catalog_env = {"CATALOG_DATABASE_URL": database_url, "CATALOG_CACHE_URL": cache_url}
        with serve("catalog", tmp_path, workers=2, env=catalog_env) as catalog:
            discovery = {"FLOTILLA_DISCOVERY_STATIC": json.dumps({"catalog": catalog.url})}
            with serve("cart", tmp_path, env=discovery) as cart:
                page = requests.get(
                    f"{catalog.url}/products", params={"category": "tea", "limit": 3}, timeout=5
                )
                assert page.status_code == 200
                assert len(page.json()["items"]) == 3
                sku = page.json()["items"][0]["sku"]

                alice = caller("alice", "cart")
                added = requests.post(
                    f"{cart.url}/cart/items",
                    json={"sku": sku, "quantity": 2},
                    headers=signed(alice, "cart", "POST", "/cart/items"),
                    timeout=5,
                )
                assert added.status_code == 200, added.text
                assert added.headers["ETag"] == '"1"'
                read = requests.get(
                    f"{cart.url}/cart", headers=signed(alice, "cart", "GET", "/cart"), timeout=5
                )
                assert read.json()["items"][0]["sku"] == sku

                for served in (catalog, cart):
                    ready = requests.get(f"{served.url}/readyz", timeout=5).json()
                    assert ready["status"] == "ok", ready

                cart_line = next(
                    line
                    for line in cart.logs()
                    if line.get("route") == "/cart/items" and line.get("status") == 200
                )
                catalog_lines = [line for line in catalog.logs() if line.get("route") == "/products/<sku>"]
                assert cart_line["trace_id"] in {line["trace_id"] for line in catalog_lines}
