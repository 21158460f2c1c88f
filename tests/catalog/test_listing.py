"""Listing the seeded catalogue: cursor pages cover every product exactly once, filters and search."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.catalog.support import admin

pytestmark = pytest.mark.usefixtures("seeded")


def walk(client: FlaskClient, **query: Any) -> tuple[list[dict[str, Any]], int]:
    """Every page of a listing; returns the products and how many pages it took."""
    items: list[dict[str, Any]] = []
    pages, cursor = 0, None
    while True:
        params = query | ({"cursor": cursor} if cursor else {})
        answer = client.get("/products", query_string=params)
        assert answer.status_code == 200, answer.json
        pages += 1
        items += answer.json["items"]
        cursor = answer.json["next_cursor"]
        if cursor is None:
            return items, pages


def test_pages_walk_every_product_exactly_once_in_a_stable_order(client: FlaskClient) -> None:
    items, pages = walk(client, limit=7)
    skus = [p["sku"] for p in items]
    assert len(skus) == len(set(skus)) == 100
    assert pages == 15
    assert [(p["name"], p["sku"]) for p in items] == sorted((p["name"], p["sku"]) for p in items)
    assert walk(client, limit=7)[0] == items


def test_a_product_added_mid_walk_does_not_repeat_or_skip_others(client: FlaskClient) -> None:
    first = client.get("/products", query_string={"limit": 50}).json
    new = {"sku": "AAA-0001", "name": "Aardvark Mug", "category": "mugs", "price_cents": 900, "stock": 3}
    assert client.post("/products", json=new, headers=admin()).status_code == 201
    rest, _ = walk(client, limit=50, cursor=first["next_cursor"])
    skus = [p["sku"] for p in first["items"] + rest]
    assert (
        len(skus) == len(set(skus)) == 100
    )  # the new one sorts before the cursor: not seen, nothing repeated


def test_default_and_maximum_page_sizes(make_app: Any) -> None:
    client = make_app(default_page_size=10, max_page_size=30).test_client()
    assert len(client.get("/products").json["items"]) == 10
    assert len(client.get("/products?limit=500").json["items"]) == 30


def test_cursors_are_opaque_and_tied_to_their_filters(client: FlaskClient) -> None:
    cursor = client.get("/products?limit=5&category=tea").json["next_cursor"]
    assert client.get(f"/products?limit=5&category=tea&cursor={cursor}").status_code == 200
    other = client.get(f"/products?limit=5&category=coffee&cursor={cursor}")
    assert other.status_code == 400
    assert other.mimetype == "application/problem+json"
    assert client.get("/products?cursor=not-a-cursor").status_code == 400


def test_filters(client: FlaskClient) -> None:
    coffee, _ = walk(client, category="coffee")
    assert len(coffee) == 13
    assert {p["category"] for p in coffee} == {"coffee"}
    priced, _ = walk(client, min_price=1000, max_price=2000, limit=100)
    assert priced
    assert all(1000 <= p["price_cents"] <= 2000 for p in priced)
    in_stock, _ = walk(client, in_stock="true", limit=100)
    out_of_stock, _ = walk(client, in_stock="false", limit=100)
    assert len(in_stock) + len(out_of_stock) == 100
    assert all(p["stock"] == 0 for p in out_of_stock) and len(out_of_stock) == 8
    combined, _ = walk(client, category="brewing", in_stock="true", max_price=3000, limit=3)
    assert {p["sku"] for p in combined} == {"BRW-0001", "BRW-0008", "BRW-0009", "BRW-0012", "BRW-0013"}
    assert client.get("/products?min_price=10&max_price=5").status_code == 400
    assert client.get("/products?category=nope").json["items"] == []


def test_search_by_name_is_case_insensitive_and_literal(client: FlaskClient) -> None:
    found, _ = walk(client, q="ESPRESSO")
    assert {p["sku"] for p in found} == {"COF-0006", "BRW-0013", "MUG-0004", "CHO-0009", "GFT-0013"}
    assert walk(client, q="dark chocolate")[0][0]["name"].lower().startswith("dark chocolate")
    # LIKE wildcards are searched for literally, not expanded
    assert [p["sku"] for p in walk(client, q="%")[0]] == ["CHO-0001"]
    assert walk(client, q="_")[0] == []
