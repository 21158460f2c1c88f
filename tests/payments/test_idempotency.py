"""Idempotency-Key: mandatory, one effect per key, the same answer for every retry, 422 for another body,
and safe under real concurrency (a threaded HTTP server, several requests with one key at once)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask.testing import FlaskClient

from tests.catalog.support import signed
from tests.payments.support import (
    APPROVE,
    AUTHORIZATIONS,
    DECLINE,
    PROBLEM_JSON,
    body,
    engine,
    held,
    key,
    orders,
    rows,
    with_key,
)


def test_every_post_needs_a_key(client: FlaskClient, database_url: str) -> None:
    paths = [
        AUTHORIZATIONS,
        f"{AUTHORIZATIONS}/pa_{'0' * 32}/capture",
        f"{AUTHORIZATIONS}/pa_{'0' * 32}/void",
    ]
    for path in paths:
        answer = client.post(path, json=body() if path == AUTHORIZATIONS else None, headers=orders())
        assert answer.status_code == 400, path
        assert answer.mimetype == PROBLEM_JSON
        assert answer.json["type"] == "urn:flotilla:problem:idempotency-key-missing"
    assert rows(database_url, "authorizations") == []


def test_a_malformed_key_is_422(client: FlaskClient) -> None:
    answer = client.post(AUTHORIZATIONS, json=body(), headers=with_key(orders(), "x" * 256))
    assert answer.status_code == 422
    assert [e["field"] for e in answer.json["errors"]] == ["header.Idempotency-Key"]


def test_no_key_check_before_the_caller_check(client: FlaskClient) -> None:
    assert client.post(AUTHORIZATIONS, json=body()).status_code == 401


@pytest.mark.parametrize("card", [APPROVE, DECLINE])
def test_the_same_key_and_body_get_the_same_answer_and_one_effect(
    client: FlaskClient, database_url: str, card: str
) -> None:
    idempotency_key, sent = key(), body(card)
    first = client.post(AUTHORIZATIONS, json=sent, headers=with_key(orders(), idempotency_key))
    second = client.post(AUTHORIZATIONS, json=sent, headers=with_key(orders(), idempotency_key))
    assert first.status_code in (201, 402)
    assert (second.status_code, second.get_data()) == (first.status_code, first.get_data())
    assert second.mimetype == first.mimetype
    assert second.headers.get("Location") == first.headers.get("Location")
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(rows(database_url, "authorizations")) == 1


def test_the_same_body_with_its_keys_in_another_order_is_the_same_request(client: FlaskClient) -> None:
    idempotency_key, sent = key(), body()
    first = client.post(AUTHORIZATIONS, json=sent, headers=with_key(orders(), idempotency_key))
    reordered = dict(reversed(list(sent.items())))
    second = client.post(AUTHORIZATIONS, json=reordered, headers=with_key(orders(), idempotency_key))
    assert (second.status_code, second.get_data()) == (first.status_code, first.get_data())


@pytest.mark.parametrize(
    "change", [{"amount_cents": 4201}, {"card": DECLINE}, {"currency": "EUR"}, {"order_id": "another"}]
)
def test_the_same_key_with_another_body_is_422(
    client: FlaskClient, database_url: str, change: dict[str, Any]
) -> None:
    idempotency_key, sent = key(), body()
    assert (
        client.post(AUTHORIZATIONS, json=sent, headers=with_key(orders(), idempotency_key)).status_code == 201
    )
    other = client.post(AUTHORIZATIONS, json=sent | change, headers=with_key(orders(), idempotency_key))
    assert other.status_code == 422
    assert other.mimetype == PROBLEM_JSON
    assert other.json["type"] == "urn:flotilla:problem:idempotency-key-reused"
    assert len(rows(database_url, "authorizations")) == 1


def test_the_same_key_on_another_operation_is_422(client: FlaskClient) -> None:
    idempotency_key = key()
    created = client.post(AUTHORIZATIONS, json=body(), headers=with_key(orders(), idempotency_key))
    path = f"{created.headers['Location']}/capture"
    reused = client.post(path, headers=with_key(orders(), idempotency_key))
    assert (reused.status_code, reused.json["type"]) == (422, "urn:flotilla:problem:idempotency-key-reused")


def test_concurrent_identical_requests_make_one_authorization(
    make_app: Callable[..., Any], serve_app: Callable[[Any], str], database_url: str
) -> None:
    """Eight requests with one key released at once: the provider's latency keeps the first one busy
    while the others arrive, find the key held, wait, and replay its answer."""
    url = serve_app(make_app(fault_latency_ms=300))
    idempotency_key, sent = key(), body()
    start = threading.Barrier(8)
    answers: list[requests.Response] = []

    def send() -> None:
        headers = signed(with_key(orders(), idempotency_key), "payments", "POST", AUTHORIZATIONS)
        start.wait()
        answers.append(requests.post(url + AUTHORIZATIONS, json=sent, headers=headers, timeout=15))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert [a.status_code for a in answers] == [201] * 8
    assert len({a.content for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 7
    assert len(rows(database_url, "authorizations")) == 1
    assert len(rows(database_url, "idempotency_keys")) == 1


def test_a_key_still_in_use_past_the_wait_is_409_then_replays(
    make_app: Callable[..., Any], serve_app: Callable[[Any], str], database_url: str
) -> None:
    url = serve_app(make_app(fault_latency_ms=800, idempotency_wait_seconds=0))
    idempotency_key, sent = key(), body()

    def post() -> requests.Response:
        headers = signed(with_key(orders(), idempotency_key), "payments", "POST", AUTHORIZATIONS)
        return requests.post(url + AUTHORIZATIONS, json=sent, headers=headers, timeout=15)

    first: list[requests.Response] = []
    holder = threading.Thread(target=lambda: first.append(post()))
    holder.start()
    assert held(database_url, idempotency_key)["state"] == "in_progress"
    busy = post()
    holder.join(10)
    assert busy.status_code == 409
    assert busy.headers["Content-Type"] == PROBLEM_JSON
    assert busy.json()["type"] == "urn:flotilla:problem:idempotency-key-in-use"
    assert busy.headers["Retry-After"] == "1"
    assert first[0].status_code == 201
    later = post()
    assert (later.status_code, later.content) == (201, first[0].content)
    assert len(rows(database_url, "authorizations")) == 1


def test_a_request_that_lost_its_key_commits_nothing(
    make_app: Callable[..., Any], serve_app: Callable[[Any], str], database_url: str
) -> None:
    """While the first request is at the provider, its key is taken over (as a retry does once the
    lease has run out): the first one must not write its authorization."""
    url = serve_app(make_app(fault_latency_ms=600))
    idempotency_key = key()
    answers: list[requests.Response] = []

    def post() -> None:
        headers = signed(with_key(orders(), idempotency_key), "payments", "POST", AUTHORIZATIONS)
        answers.append(requests.post(url + AUTHORIZATIONS, json=body(), headers=headers, timeout=15))

    holder = threading.Thread(target=post)
    holder.start()
    held(database_url, idempotency_key)
    with engine(database_url) as db, db.begin() as conn:
        conn.execute(
            sa.text("UPDATE idempotency_keys SET owner = 'another-request' WHERE key = :key"),
            {"key": idempotency_key},
        )
    holder.join(10)
    assert answers[0].status_code == 409
    assert answers[0].json()["type"] == "urn:flotilla:problem:idempotency-key-in-use"
    assert rows(database_url, "authorizations") == []
    [row] = rows(database_url, "idempotency_keys")
    assert (row["state"], row["owner"]) == ("in_progress", "another-request")  # the new holder's, untouched


def test_an_expired_lease_is_taken_over(make_app: Callable[..., Any], database_url: str) -> None:
    """A key left in progress by a request that died (its lease in the past) does not block a retry."""
    client = make_app().test_client()
    idempotency_key, sent = key(), body()
    assert (
        client.post(AUTHORIZATIONS, json=sent, headers=with_key(orders(), idempotency_key)).status_code == 201
    )
    with engine(database_url) as db, db.begin() as conn:
        # Turn the completed key back into the claim of a request that died mid-way.
        conn.execute(sa.text("DELETE FROM authorizations"))
        conn.execute(
            sa.text(
                "UPDATE idempotency_keys SET state = 'in_progress', owner = 'dead', response_status = NULL, "
                "response_body = NULL, locked_until = now() - interval '1 second' WHERE key = :key"
            ),
            {"key": idempotency_key},
        )
    retry = client.post(AUTHORIZATIONS, json=sent, headers=with_key(orders(), idempotency_key))
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers
    assert len(rows(database_url, "authorizations")) == 1
