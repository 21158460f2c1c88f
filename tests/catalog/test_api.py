"""Catalog API: public reads, admin-only writes (401 without a gateway signature, 403 without the
scope), problem+json for every refusal."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.catalog.support import admin, caller

COFFEE = {"slug": "coffee", "name": "Coffee", "description": "Beans."}
BEANS = {"sku": "COF-0001", "name": "House Blend 250g", "category": "coffee", "price_cents": 1200, "stock": 5}


def make_category(client: FlaskClient, body: dict[str, Any] = COFFEE) -> None:
    assert client.post("/categories", json=body, headers=admin()).status_code == 201


def test_product_crud_with_the_admin_scope(client: FlaskClient) -> None:
    make_category(client)
    created = client.post("/products", json=BEANS, headers=admin())
    assert created.status_code == 201
    assert created.headers["Location"] == "/products/COF-0001"
    assert created.json | {"updated_at": None} == {
        **BEANS,
        "description": "",
        "currency": "USD",
        "in_stock": True,
        "updated_at": None,
    }
    assert client.get("/products/COF-0001").json["name"] == "House Blend 250g"

    changed = client.patch("/products/COF-0001", json={"price_cents": 1350, "stock": 0}, headers=admin())
    assert changed.status_code == 200
    assert (changed.json["price_cents"], changed.json["in_stock"]) == (1350, False)
    assert client.get("/products/COF-0001").json["price_cents"] == 1350

    assert client.delete("/products/COF-0001", headers=admin()).status_code == 204
    gone = client.get("/products/COF-0001")
    assert gone.status_code == 404
    assert gone.mimetype == "application/problem+json"


def test_writes_need_a_gateway_signature_and_the_admin_scope(client: FlaskClient) -> None:
    make_category(client)
    writes = [
        ("post", "/products", BEANS),
        ("patch", "/products/COF-0001", {"stock": 1}),
        ("delete", "/products/COF-0001", None),
        ("post", "/categories", {"slug": "tea", "name": "Tea"}),
        ("patch", "/categories/coffee", {"name": "Kaffee"}),
        ("delete", "/categories/coffee", None),
    ]
    for method, url, body in writes:
        anonymous = getattr(client, method)(url, json=body)
        assert anonymous.status_code == 401, (method, url)
        assert anonymous.mimetype == "application/problem+json"
        forged = getattr(client, method)(url, json=body, headers={"X-Flotilla-Subject": "ops"})
        assert forged.status_code == 401
        shopper = getattr(client, method)(url, json=body, headers=caller("alice", "cart", "orders"))
        assert shopper.status_code == 403, (method, url)
    assert client.get("/products/COF-0001").status_code == 404
    assert client.get("/categories").json["items"][0]["name"] == "Coffee"


def test_reads_are_public(client: FlaskClient) -> None:
    make_category(client)
    client.post("/products", json=BEANS, headers=admin())
    assert client.get("/products").status_code == 200
    assert client.get("/products/COF-0001").status_code == 200
    assert client.get("/categories").status_code == 200


def test_conflicts_and_bad_references(client: FlaskClient) -> None:
    make_category(client)
    assert client.post("/categories", json=COFFEE, headers=admin()).status_code == 409
    assert client.post("/products", json=BEANS, headers=admin()).status_code == 201
    duplicate = client.post("/products", json=BEANS, headers=admin())
    assert duplicate.status_code == 409
    unknown = client.post("/products", json=BEANS | {"sku": "TEA-0001", "category": "tea"}, headers=admin())
    assert unknown.status_code == 422
    assert "no category 'tea'" in unknown.json["detail"]
    busy = client.delete("/categories/coffee", headers=admin())
    assert busy.status_code == 409
    assert "still holds 1 products" in busy.json["detail"]
    assert client.patch("/products/NOPE-1", json={"stock": 1}, headers=admin()).status_code == 404


def test_validation_refuses_bad_fields(client: FlaskClient) -> None:
    make_category(client)
    bad = [
        BEANS | {"price_cents": -1},
        BEANS | {"sku": "lower-case"},
        BEANS | {"colour": "red"},
        {k: v for k, v in BEANS.items() if k != "name"},
    ]
    for body in bad:
        answer = client.post("/products", json=body, headers=admin())
        assert answer.status_code == 422, body
        assert answer.json["errors"]
    assert client.post("/products", json=BEANS, headers=admin()).status_code == 201
    assert client.patch("/products/COF-0001", json={"name": None}, headers=admin()).status_code == 422


def test_categories_count_their_products_and_can_be_renamed(client: FlaskClient) -> None:
    make_category(client)
    make_category(client, {"slug": "tea", "name": "Tea"})
    client.post("/products", json=BEANS, headers=admin())
    listing = {c["slug"]: c for c in client.get("/categories").json["items"]}
    assert (listing["coffee"]["product_count"], listing["tea"]["product_count"]) == (1, 0)
    renamed = client.patch("/categories/tea", json={"name": "Teas"}, headers=admin())
    assert renamed.json == {"slug": "tea", "name": "Teas", "description": "", "product_count": 0}
    assert client.delete("/categories/tea", headers=admin()).status_code == 204
    assert [c["slug"] for c in client.get("/categories").json["items"]] == ["coffee"]


def test_every_route_is_in_the_openapi_document(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").json
    assert set(doc["paths"]) == {"/products", "/products/{sku}", "/categories", "/categories/{slug}"}
    params = {p["name"] for p in doc["paths"]["/products"]["get"]["parameters"]}
    assert params == {"category", "min_price", "max_price", "in_stock", "q", "limit", "cursor"}
