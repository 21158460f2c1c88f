"""Malformed cart requests are problems (400/422), never a 500: a JSON body nested past what the
parser can follow, and an If-Match that can't be a version (too many digits, non-ASCII digits)."""

from __future__ import annotations

from typing import Any

import pytest

PROBLEM_JSON = "application/problem+json"


def assert_problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.mimetype == PROBLEM_JSON
    body: dict[str, Any] = answer.json
    assert body["detail"]
    return body


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_a_deeply_nested_json_body_is_400(cart: Any, alice: dict[str, str], opener: str) -> None:
    body = opener * 100_000
    answer = cart.post("/cart/items", data=body, content_type="application/json", headers=alice)
    assert assert_problem(answer, 400)["title"] == "Malformed JSON"
    answer = cart.put("/cart/items/COF-0001", data=body, content_type="application/json", headers=alice)
    assert_problem(answer, 400)
    assert cart.get("/cart", headers=alice).json["version"] == 0


def test_moderately_nested_json_is_still_validated_as_usual(cart: Any, alice: dict[str, str]) -> None:
    answer = cart.post("/cart/items", json={"sku": [[[[["COF-0001"]]]]]}, headers=alice)
    assert assert_problem(answer, 422)["errors"][0]["field"] == "body.sku"


@pytest.mark.parametrize(
    "if_match",
    ['"' + "9" * 5000 + '"', "9" * 5000, "W/" + "1" * 4301, "1" * 40, '"\u00b2"', "\u00b9"],
)
def test_an_if_match_that_cannot_be_a_version_is_400(cart: Any, alice: dict[str, str], if_match: str) -> None:
    answer = cart.post("/cart/items", json={"sku": "COF-0001"}, headers=alice | {"If-Match": if_match})
    assert assert_problem(answer, 400)["title"] == "Bad If-Match"
    assert cart.get("/cart", headers=alice).json["version"] == 0


def test_a_long_but_possible_version_is_a_stale_409(cart: Any, alice: dict[str, str]) -> None:
    answer = cart.delete("/cart", headers=alice | {"If-Match": '"' + "9" * 18 + '"'})
    assert assert_problem(answer, 409)["current_version"] == 0


@pytest.mark.parametrize("quantity", ["2", True, 2.0, "1e3"])
def test_a_quantity_must_be_a_json_integer(cart: Any, alice: dict[str, str], quantity: Any) -> None:
    answer = cart.post("/cart/items", json={"sku": "COF-0001", "quantity": quantity}, headers=alice)
    assert [e["field"] for e in assert_problem(answer, 422)["errors"]] == ["body.quantity"]
    answer = cart.put("/cart/items/COF-0001", json={"quantity": quantity}, headers=alice)
    assert [e["field"] for e in assert_problem(answer, 422)["errors"]] == ["body.quantity"]
    assert cart.get("/cart", headers=alice).json["version"] == 0
