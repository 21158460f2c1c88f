"""Capture and void: the state machine, its 409s, repeats that change nothing, and a real race."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from tests.catalog.support import signed
from tests.payments.support import (
    AUTHORIZATIONS,
    DECLINE,
    PROBLEM_JSON,
    body,
    key,
    orders,
    rows,
    with_key,
)


def authorized(client: FlaskClient, card: str | None = None) -> str:
    answer = client.post(
        AUTHORIZATIONS, json=body(card) if card else body(), headers=with_key(orders(), key())
    )
    assert answer.status_code in (201, 402), answer.get_data(as_text=True)
    return str(answer.json.get("id") or answer.json["authorization_id"])


def act(
    client: FlaskClient, authorization_id: str, operation: str, idempotency_key: str | None = None
) -> Any:
    path = f"{AUTHORIZATIONS}/{authorization_id}/{operation}"
    return client.post(path, headers=with_key(orders(), idempotency_key or key()))


@pytest.mark.parametrize(("operation", "status"), [("capture", "CAPTURED"), ("void", "VOIDED")])
def test_capture_or_void_moves_an_authorization_once(
    client: FlaskClient, database_url: str, operation: str, status: str
) -> None:
    payment = authorized(client)
    first = act(client, payment, operation)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert (first.json["id"], first.json["status"]) == (payment, status)
    # Again, with a new key: the operation is idempotent by state too, nothing changes.
    again = act(client, payment, operation)
    assert again.status_code == 200
    assert again.json == first.json
    assert "Idempotent-Replayed" not in again.headers
    [row] = rows(database_url, "authorizations")
    assert row["status"] == status


@pytest.mark.parametrize(
    ("first", "then", "reason"),
    [("void", "capture", "already_voided"), ("capture", "void", "already_captured")],
)
def test_the_other_operation_after_a_final_one_is_409(
    client: FlaskClient, database_url: str, first: str, then: str, reason: str
) -> None:
    payment = authorized(client)
    done = act(client, payment, first)
    assert done.status_code == 200
    refused = act(client, payment, then)
    assert refused.status_code == 409
    assert refused.mimetype == PROBLEM_JSON
    assert (refused.json["reason"], refused.json["current_status"]) == (reason, done.json["status"])
    assert refused.json["type"] == "urn:flotilla:problem:payment-state-conflict"
    assert [r["status"] for r in rows(database_url, "authorizations")] == [done.json["status"]]


@pytest.mark.parametrize("operation", ["capture", "void"])
def test_a_declined_authorization_can_be_neither_captured_nor_voided(
    client: FlaskClient, operation: str
) -> None:
    refused = act(client, authorized(client, DECLINE), operation)
    assert refused.status_code == 409
    assert refused.json["reason"] == "declined"


def test_an_unknown_authorization_is_404_and_its_key_keeps_that_answer(client: FlaskClient) -> None:
    idempotency_key = key()
    missing = act(client, f"pa_{'f' * 32}", "capture", idempotency_key)
    assert (missing.status_code, missing.mimetype) == (404, PROBLEM_JSON)
    replay = act(client, f"pa_{'f' * 32}", "capture", idempotency_key)
    assert (replay.status_code, replay.get_data()) == (404, missing.get_data())
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_a_capture_and_a_void_racing_end_in_one_state(
    make_app: Callable[..., Any], serve_app: Callable[[Any], str], database_url: str
) -> None:
    """Both pass the provider at once (its latency lines them up), then one takes the row lock first:
    the other sees its result and is refused. Never both, never neither."""
    app = make_app(fault_latency_ms=200)
    payment = authorized(app.test_client())
    url = serve_app(app)
    answers: dict[str, requests.Response] = {}
    start = threading.Barrier(2)

    def send(operation: str) -> None:
        path = f"{AUTHORIZATIONS}/{payment}/{operation}"
        start.wait()
        answers[operation] = requests.post(
            url + path, headers=signed(with_key(orders(), key()), "payments", "POST", path), timeout=10
        )

    threads = [threading.Thread(target=send, args=(op,)) for op in ("capture", "void")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(a.status_code for a in answers.values()) == [200, 409]
    winner = next(a for a in answers.values() if a.status_code == 200).json()["status"]
    assert [r["status"] for r in rows(database_url, "authorizations")] == [winner]
