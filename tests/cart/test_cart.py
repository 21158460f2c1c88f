"""Cart API: the principal's own cart, items checked against the real catalog, versions and ETags,
TTL on every write, and what the cart does while the catalog is down."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from tests.catalog.support import caller
from tests.data.support import closed_port


def with_version(headers: dict[str, str], version: int | str) -> dict[str, str]:
    return headers | {"If-Match": f'"{version}"' if isinstance(version, int) else version}


def test_add_read_update_remove(cart: Any, alice: dict[str, str]) -> None:
    empty = cart.get("/cart", headers=alice)
    assert empty.status_code == 200
    assert empty.json == {"items": [], "total_cents": 0, "currency": None, "version": 0, "expires_at": None}
    assert empty.headers["ETag"] == '"0"'

    added = cart.post("/cart/items", json={"sku": "COF-0001", "quantity": 2}, headers=alice)
    assert added.status_code == 200
    assert added.headers["ETag"] == '"1"'
    assert added.json["items"] == [
        {
            "sku": "COF-0001",
            "name": "Ethiopia Yirgacheffe Whole Bean 250g",
            "quantity": 2,
            "unit_price_cents": 1450,
            "line_total_cents": 2900,
            "currency": "USD",
        }
    ]
    more = cart.post("/cart/items", json={"sku": "COF-0001"}, headers=alice)
    assert more.json["items"][0]["quantity"] == 3
    cart.post("/cart/items", json={"sku": "TEA-0002", "quantity": 1}, headers=alice)

    updated = cart.put("/cart/items/COF-0001", json={"quantity": 5}, headers=with_version(alice, 3))
    assert updated.status_code == 200
    assert updated.json["version"] == 4
    assert updated.json["total_cents"] == 5 * 1450 + 990

    removed = cart.delete("/cart/items/COF-0001", headers=alice)
    assert [line["sku"] for line in removed.json["items"]] == ["TEA-0002"]
    assert cart.delete("/cart/items/COF-0001", headers=alice).status_code == 404
    assert cart.get("/cart", headers=alice).json["version"] == 5

    cleared = cart.delete("/cart", headers=alice)
    assert (cleared.json["items"], cleared.json["version"]) == ([], 6)


def test_a_user_sees_and_changes_only_their_own_cart(
    cart: Any, alice: dict[str, str], bob: dict[str, str]
) -> None:
    cart.post("/cart/items", json={"sku": "MUG-0001", "quantity": 2}, headers=alice)
    assert cart.get("/cart", headers=bob).json["items"] == []
    assert cart.delete("/cart/items/MUG-0001", headers=bob).status_code == 404
    assert cart.put("/cart/items/MUG-0001", json={"quantity": 1}, headers=bob).status_code == 200
    assert cart.get("/cart", headers=alice).json["items"][0]["quantity"] == 2
    for who in (alice, bob):
        for method in ("get", "put", "delete"):
            assert (
                getattr(cart, method)(f"/carts/{alice['X-Flotilla-Subject']}", headers=who).status_code == 404
            )
            assert (
                getattr(cart, method)(f"/cart/{alice['X-Flotilla-Subject']}", headers=who).status_code == 404
            )


def test_the_cart_needs_a_gateway_signed_principal_with_the_cart_scope(cart: Any) -> None:
    assert cart.get("/cart").status_code == 401
    assert cart.get("/cart", headers={"X-Flotilla-Subject": "alice"}).status_code == 401
    no_scope = cart.post("/cart/items", json={"sku": "COF-0001"}, headers=caller("alice", "orders"))
    assert no_scope.status_code == 403
    assert no_scope.mimetype == "application/problem+json"


def test_a_stale_version_is_a_409_problem(cart: Any, alice: dict[str, str], bob: dict[str, str]) -> None:
    first = cart.post("/cart/items", json={"sku": "COF-0002"}, headers=alice)
    assert first.headers["ETag"] == '"1"'
    cart.post("/cart/items", json={"sku": "COF-0003"}, headers=alice)  # another tab changes the cart

    stale = cart.put("/cart/items/COF-0002", json={"quantity": 4}, headers=with_version(alice, 1))
    assert stale.status_code == 409
    assert stale.mimetype == "application/problem+json"
    assert stale.json["type"] == "urn:flotilla:problem:stale-version"
    assert stale.json["current_version"] == 2
    assert stale.headers["ETag"] == '"2"'
    assert cart.delete("/cart", headers=with_version(alice, 1)).status_code == 409

    fresh = cart.put("/cart/items/COF-0002", json={"quantity": 4}, headers=with_version(alice, 2))
    assert fresh.status_code == 200
    assert (
        cart.put(
            "/cart/items/COF-0002", json={"quantity": 1}, headers=with_version(alice, 'W/"3"')
        ).status_code
        == 200
    )
    assert cart.delete("/cart", headers=with_version(alice, "*")).status_code == 200
    assert cart.delete("/cart", headers=with_version(alice, "three")).status_code == 400
    assert (
        cart.post("/cart/items", json={"sku": "COF-0002"}, headers=with_version(bob, "*")).status_code == 409
    )


def test_concurrent_adds_lose_no_update(make_cart: Any, alice: dict[str, str]) -> None:
    app = make_cart()
    answers: list[int] = []

    def add() -> None:
        status = app.test_client().post("/cart/items", json={"sku": "BRW-0008"}, headers=alice).status_code
        answers.append(status)

    threads = [threading.Thread(target=add) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(answers) <= {200, 409}
    final = app.test_client().get("/cart", headers=alice).json
    assert final["items"][0]["quantity"] == answers.count(200) == final["version"]


def test_items_are_checked_against_the_catalog(make_cart: Any, alice: dict[str, str]) -> None:
    cart = make_cart(max_quantity=20).test_client()
    unknown = cart.post("/cart/items", json={"sku": "NOPE-0001"}, headers=alice)
    assert unknown.status_code == 422
    assert unknown.json["type"] == "urn:flotilla:problem:unknown-sku"

    short = cart.put("/cart/items/COF-0013", json={"quantity": 4}, headers=alice)  # 3 in stock
    assert short.status_code == 409
    assert short.json["type"] == "urn:flotilla:problem:insufficient-stock"
    assert short.json["available"] == 3
    assert cart.put("/cart/items/COF-0013", json={"quantity": 3}, headers=alice).status_code == 200
    assert cart.post("/cart/items", json={"sku": "COF-0013"}, headers=alice).status_code == 409
    assert cart.post("/cart/items", json={"sku": "COF-0007"}, headers=alice).status_code == 409  # stock 0

    too_many = cart.put("/cart/items/GFT-0003", json={"quantity": 21}, headers=alice)  # 1000 in stock
    assert too_many.status_code == 422
    assert cart.put("/cart/items/GFT-0003", json={"quantity": 0}, headers=alice).status_code == 422
    assert cart.get("/cart", headers=alice).json["version"] == 1


def test_every_write_sets_the_ttl_attribute(
    cart: Any, dynamodb: Any, env_name: str, alice: dict[str, str]
) -> None:
    table = f"{env_name}-cart-carts"
    ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")

    before = time.time()
    answer = cart.post("/cart/items", json={"sku": "CHO-0001"}, headers=alice)
    item = dynamodb.get_item(TableName=table, Key={"user_id": {"S": alice["X-Flotilla-Subject"]}})["Item"]
    expires_at = int(item["expires_at"]["N"])
    assert before + 30 * 86400 - 5 <= expires_at <= time.time() + 30 * 86400 + 5
    assert answer.json["expires_at"].startswith(time.strftime("%Y-%m-%d", time.gmtime(expires_at)))
    assert item["version"] == {"N": "1"}

    cart.delete("/cart/items/CHO-0001", headers=alice)
    later = dynamodb.get_item(TableName=table, Key={"user_id": {"S": alice["X-Flotilla-Subject"]}})["Item"]
    assert int(later["expires_at"]["N"]) >= expires_at


def test_an_expired_cart_reads_as_empty_and_keeps_counting_versions(
    cart: Any, dynamodb: Any, env_name: str, alice: dict[str, str]
) -> None:
    """DynamoDB deletes expired items late (up to days): the cart must not resurrect them meanwhile."""
    cart.post("/cart/items", json={"sku": "CHO-0002"}, headers=alice)
    dynamodb.update_item(
        TableName=f"{env_name}-cart-carts",
        Key={"user_id": {"S": alice["X-Flotilla-Subject"]}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 60)}},
    )
    expired = cart.get("/cart", headers=alice)
    assert (expired.json["items"], expired.json["version"]) == ([], 1)
    again = cart.post("/cart/items", json={"sku": "CHO-0003"}, headers=alice)
    assert [line["sku"] for line in again.json["items"]] == ["CHO-0003"]
    assert again.json["version"] == 2


def test_catalog_down_is_503_with_retry_after_once_the_circuit_opens(
    make_cart: Any, monkeypatch: pytest.MonkeyPatch, alice: dict[str, str]
) -> None:
    cart = make_cart().test_client()
    assert cart.post("/cart/items", json={"sku": "PAN-0001"}, headers=alice).status_code == 200

    monkeypatch.setenv(
        "FLOTILLA_DISCOVERY_STATIC", json.dumps({"catalog": f"http://127.0.0.1:{closed_port()}"})
    )
    policy = {"retries": {"attempts": 0}, "circuitBreaker": {"consecutiveFailures": 2, "openSeconds": 30}}
    monkeypatch.setenv("FLOTILLA_UPSTREAMS", json.dumps({"catalog": policy}))
    down = make_cart().test_client()  # another replica of the same cart, whose catalog is unreachable

    statuses = [
        down.post("/cart/items", json={"sku": "PAN-0002"}, headers=alice).status_code for _ in range(2)
    ]
    assert statuses == [502, 502]
    open_circuit = down.post("/cart/items", json={"sku": "PAN-0002"}, headers=alice)
    assert open_circuit.status_code == 503
    assert open_circuit.mimetype == "application/problem+json"
    assert 1 <= int(open_circuit.headers["Retry-After"]) <= 30

    read = down.get("/cart", headers=alice)
    assert read.status_code == 200
    assert [line["sku"] for line in read.json["items"]] == ["PAN-0001"]
    assert down.delete("/cart/items/PAN-0001", headers=alice).status_code == 200  # removing needs no catalog

    ready = down.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["status"] == "degraded"
    assert (ready.json["checks"]["catalog"]["state"], ready.json["checks"]["dynamodb"]["state"]) == (
        "degraded",
        "ok",
    )


def test_readyz_fails_without_the_table(make_cart: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert make_cart().test_client().get("/readyz").json["status"] == "ok"
    monkeypatch.setenv("FLOTILLA_ENV", "never-provisioned")
    ready = make_cart().test_client().get("/readyz")
    assert ready.status_code == 503
    assert ready.json["checks"]["dynamodb"]["state"] == "failed"


def test_every_route_is_in_the_openapi_document(cart: Any) -> None:
    paths = cart.get("/openapi.json").json["paths"]
    assert set(paths) == {"/cart", "/cart/items", "/cart/items/{sku}"}
    assert json.dumps(paths["/cart/items/{sku}"]["put"]).count("quantity") >= 1


def test_a_table_missing_from_the_spec_stops_start_up_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from flotilla.cli import main

    monkeypatch.setenv("CART_TABLE", "baskets")
    result = CliRunner().invoke(main, ["config", "cart"])
    assert result.exit_code == 2
    assert "CART_TABLE: resources.yaml declares no table 'baskets' with a ttlAttribute" in result.output
