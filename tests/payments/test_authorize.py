"""Authorizing each test card on a real Postgres: the answer, what is recorded, and what never is."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.catalog.support import caller
from tests.payments.support import (
    APPROVE,
    AUTHORIZATIONS,
    DECLINE,
    INSUFFICIENT,
    PROBLEM_JSON,
    SERVER_ERROR,
    SLOW,
    TEST_CARDS,
    UNKNOWN_VALID,
    body,
    key,
    orders,
    rows,
    with_key,
)


def authorize(client: FlaskClient, card: str, **headers: str) -> Any:
    return client.post(AUTHORIZATIONS, json=body(card), headers=with_key(orders(), key(), **headers))


def test_the_approving_card_is_authorized(client: FlaskClient, database_url: str) -> None:
    sent = body(APPROVE)
    answer = client.post(AUTHORIZATIONS, json=sent, headers=with_key(orders(), key()))
    assert answer.status_code == 201, answer.get_data(as_text=True)
    found = answer.json
    assert found["status"] == "AUTHORIZED"
    assert found["id"].startswith("pa_")
    assert {k: found[k] for k in ("order_id", "amount_cents", "currency")} == {
        k: sent[k] for k in ("order_id", "amount_cents", "currency")
    }
    assert found["card"] == {"brand": "visa", "last4": "4242"}
    assert found["decline_reason"] is None
    assert answer.headers["Location"] == f"{AUTHORIZATIONS}/{found['id']}"
    assert client.get(answer.headers["Location"], headers=orders()).json == found
    [row] = rows(database_url, "authorizations")
    assert (row["id"], row["status"], row["card_last4"]) == (found["id"], "AUTHORIZED", "4242")


@pytest.mark.parametrize(
    ("card", "reason"),
    [(DECLINE, "card_declined"), (INSUFFICIENT, "insufficient_funds"), (UNKNOWN_VALID, "unsupported_card")],
)
def test_declining_cards_are_402_with_a_reason_and_kept_as_declined(
    client: FlaskClient, database_url: str, card: str, reason: str
) -> None:
    answer = authorize(client, card)
    assert answer.status_code == 402
    assert answer.mimetype == PROBLEM_JSON
    assert answer.json["reason"] == reason
    assert answer.json["type"] == "urn:flotilla:problem:payment-declined"
    kept = client.get(f"{AUTHORIZATIONS}/{answer.json['authorization_id']}", headers=orders()).json
    assert (kept["status"], kept["decline_reason"]) == ("DECLINED", reason)
    assert [r["status"] for r in rows(database_url, "authorizations")] == ["DECLINED"]


def test_the_error_card_is_a_500_problem_and_records_nothing(client: FlaskClient, database_url: str) -> None:
    answer = authorize(client, SERVER_ERROR)
    assert answer.status_code == 500
    assert answer.mimetype == PROBLEM_JSON
    assert (answer.json["type"], answer.json["reason"]) == (
        "urn:flotilla:problem:provider-error",
        "processing_error",
    )
    assert rows(database_url, "authorizations") == []
    assert rows(database_url, "idempotency_keys") == []  # freed: a retry with the same key tries again


def test_the_slow_card_approves_after_its_delay(make_app: Callable[..., Any]) -> None:
    client = make_app(slow_card_seconds=0.3).test_client()
    started = time.monotonic()
    answer = authorize(client, SLOW)
    assert answer.status_code == 201
    assert time.monotonic() - started >= 0.3


def test_the_slow_card_is_504_at_the_callers_deadline_and_records_nothing(
    make_app: Callable[..., Any], database_url: str
) -> None:
    client = make_app(slow_card_seconds=5).test_client()
    idempotency_key, sent = key(), body(SLOW)
    started = time.monotonic()
    answer = client.post(
        AUTHORIZATIONS,
        json=sent,
        headers=with_key(orders(), idempotency_key, **{"X-Flotilla-Deadline-Ms": "300"}),
    )
    waited = time.monotonic() - started
    assert answer.status_code == 504
    assert answer.json["type"] == "urn:flotilla:problem:deadline-exceeded"
    assert 0.3 <= waited < 5  # the caller's deadline, not the card's delay
    assert rows(database_url, "authorizations") == []
    assert rows(database_url, "idempotency_keys") == []
    # The same key again, with time enough this time: it is tried afresh, not answered from a record.
    quick = make_app(slow_card_seconds=0.1).test_client()
    again = quick.post(AUTHORIZATIONS, json=sent, headers=with_key(orders(), idempotency_key))
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers


def test_no_full_card_number_is_stored_or_echoed(make_app: Callable[..., Any], database_url: str) -> None:
    client = make_app(slow_card_seconds=0.1).test_client()
    answers = [authorize(client, card) for card in (*TEST_CARDS, UNKNOWN_VALID)]
    assert sorted(a.status_code for a in answers) == [201, 201, 402, 402, 402, 500]
    refused = client.post(
        AUTHORIZATIONS, json=body("4242424242424241"), headers=with_key(orders(), key())
    )  # fails the Luhn check
    assert refused.status_code == 422
    stored = repr(rows(database_url, "authorizations")) + repr(rows(database_url, "idempotency_keys"))
    for number in (*TEST_CARDS, UNKNOWN_VALID, "4242424242424241"):
        assert number not in stored
        assert all(number not in a.get_data(as_text=True) for a in [*answers, refused])
    assert {r["card_last4"] for r in rows(database_url, "authorizations")} == {
        "4242",
        "0002",
        "9995",
        "0259",
        "1111",
    }


@pytest.mark.parametrize(
    ("card", "field_type"),
    [
        ("4242 4242 4242 4242", "string_pattern_mismatch"),
        ("42424242424", "string_pattern_mismatch"),  # 11 digits
        ("42424242424242424242", "string_pattern_mismatch"),  # 20 digits
        ("4242424242424241", "value_error"),  # Luhn
        (4242424242424242, "string_type"),  # a JSON number is not a card number
    ],
)
def test_a_malformed_card_is_422_naming_the_field(client: FlaskClient, card: Any, field_type: str) -> None:
    answer = client.post(
        AUTHORIZATIONS, json=body(APPROVE) | {"card": card}, headers=with_key(orders(), key())
    )
    assert answer.status_code == 422
    assert answer.mimetype == PROBLEM_JSON
    assert [(e["field"], e["type"]) for e in answer.json["errors"]] == [("body.card", field_type)]


@pytest.mark.parametrize(
    "change",
    [
        {"amount_cents": 0},
        {"amount_cents": 2**31},
        {"amount_cents": "4200"},
        {"currency": "usd"},
        {"order_id": ""},
        {"order_id": "a\x00b"},
        {"extra": True},
    ],
)
def test_other_bad_fields_are_422(client: FlaskClient, change: dict[str, Any], database_url: str) -> None:
    answer = client.post(AUTHORIZATIONS, json=body(APPROVE) | change, headers=with_key(orders(), key()))
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert answer.mimetype == PROBLEM_JSON
    assert rows(database_url, "idempotency_keys") == []


def test_a_form_body_is_415_and_broken_json_a_problem(client: FlaskClient) -> None:
    form = client.post(AUTHORIZATIONS, data={"card": APPROVE}, headers=with_key(orders(), key()))
    assert (form.status_code, form.mimetype) == (415, PROBLEM_JSON)
    broken = client.post(
        AUTHORIZATIONS, data="{", content_type="application/json", headers=with_key(orders(), key())
    )
    assert (broken.status_code, broken.mimetype) == (422, PROBLEM_JSON)  # the chassis: "body" is no object
    assert [e["field"] for e in broken.json["errors"]] == ["body"]


def test_only_a_signed_caller_with_the_payments_scope_gets_in(client: FlaskClient) -> None:
    unsigned = client.post(AUTHORIZATIONS, json=body(), headers={"Idempotency-Key": key()})
    assert unsigned.status_code == 401
    shopper = client.post(
        AUTHORIZATIONS, json=body(), headers=with_key(caller("alice", "cart", "orders"), key())
    )
    assert shopper.status_code == 403
    assert client.get(f"{AUTHORIZATIONS}?order_id=x").status_code == 401


def test_listing_by_order_shows_every_attempt_oldest_first(client: FlaskClient) -> None:
    order = "ord-many"
    first = client.post(AUTHORIZATIONS, json=body(DECLINE, order_id=order), headers=with_key(orders(), key()))
    second = client.post(
        AUTHORIZATIONS, json=body(APPROVE, order_id=order), headers=with_key(orders(), key())
    )
    authorize(client, APPROVE)  # another order
    listed = client.get(AUTHORIZATIONS, query_string={"order_id": order}, headers=orders())
    assert listed.status_code == 200
    assert [a["id"] for a in listed.json["items"]] == [first.json["authorization_id"], second.json["id"]]
    assert client.get(AUTHORIZATIONS, query_string={"order_id": "none"}, headers=orders()).json == {
        "items": []
    }


def test_an_unknown_authorization_is_404(client: FlaskClient) -> None:
    answer = client.get(f"{AUTHORIZATIONS}/pa_{'0' * 32}", headers=orders())
    assert (answer.status_code, answer.mimetype) == (404, PROBLEM_JSON)
    malformed = client.get(f"{AUTHORIZATIONS}/nope", headers=orders())
    assert malformed.status_code == 422
