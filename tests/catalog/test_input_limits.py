"""Hostile listing queries are refused as problems (422 or 400), never a 500: prices beyond what the
``price_cents`` column (a 32-bit integer) holds, NUL bytes (Postgres text cannot hold them) in the
search or inside a crafted cursor."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from services.catalog.api import ProductQuery
from services.catalog.store import encode_cursor, filters_fingerprint

pytestmark = pytest.mark.usefixtures("seeded")

PROBLEM_JSON = "application/problem+json"


def assert_refused(answer: Any, status: int, field: str | None = None) -> None:
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.mimetype == PROBLEM_JSON
    if field is not None:
        assert [e["field"] for e in answer.json["errors"]] == [field]
    assert answer.json["detail"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("min_price", 2**31),  # one past the column's integer range
        ("max_price", 2**31),
        ("max_price", 2**63),  # past 64 bits: the cursor fingerprint's JSON encoder can't take it
        ("min_price", 2**64 + 1),
        ("max_price", "9" * 5000),  # past Python's int-conversion digit limit
    ],
)
def test_prices_beyond_the_column_range_are_422(client: FlaskClient, name: str, value: Any) -> None:
    assert_refused(client.get("/products", query_string={name: value}), 422, f"query.{name}")


def test_the_largest_price_the_column_holds_is_a_valid_filter(client: FlaskClient) -> None:
    top = 2**31 - 1
    answer = client.get("/products", query_string={"min_price": 0, "max_price": top, "limit": 5})
    assert answer.status_code == 200, answer.json
    assert client.get("/products", query_string={"min_price": top}).json["items"] == []


def test_a_nul_byte_in_the_search_is_422(client: FlaskClient) -> None:
    assert_refused(client.get("/products?q=mug%00"), 422, "query.q")
    assert_refused(client.get("/products?q=%00"), 422, "query.q")


def test_a_nul_byte_in_the_cursor_string_is_refused(client: FlaskClient) -> None:
    cursor = client.get("/products?limit=5").json["next_cursor"]
    assert_refused(client.get(f"/products?limit=5&cursor={cursor}%00"), 422, "query.cursor")


@pytest.mark.parametrize(("name", "sku"), [("Mug\x00", "MUG-0001"), ("Mug", "MUG-\x00"), ("\x00", "\x00")])
def test_a_crafted_cursor_holding_a_nul_byte_is_400(client: FlaskClient, name: str, sku: str) -> None:
    cursor = encode_cursor(name, sku, filters_fingerprint(ProductQuery()))
    answer = client.get("/products", query_string={"cursor": cursor})
    assert_refused(answer, 400)
    assert answer.json["title"] == "Bad cursor"


def test_the_openapi_document_states_the_limits(client: FlaskClient) -> None:
    params = {
        p["name"]: p["schema"]
        for p in client.get("/openapi.json").json["paths"]["/products"]["get"]["parameters"]
    }
    for price in ("min_price", "max_price"):
        assert any(s.get("maximum") == 2**31 - 1 for s in params[price].get("anyOf", [params[price]]))
    assert any("pattern" in s for s in params["q"].get("anyOf", [params["q"]]))
    assert any("pattern" in s for s in params["cursor"].get("anyOf", [params["cursor"]]))


@pytest.mark.parametrize("name", ["Mug\x00", "Mug\x1b[31m"])
def test_control_characters_in_a_written_name_are_422(client: FlaskClient, name: str) -> None:
    from tests.catalog.support import admin

    body = {"sku": "MUG-9999", "name": name, "category": "mugs", "price_cents": 900}
    assert_refused(client.post("/products", json=body, headers=admin()), 422, "body.name")
    assert client.get("/products/MUG-9999").status_code == 404
