"""A signed header set is good for one request: its service, method, path and query, until it expires.

Someone inside the cluster who captures the headers of one request (a compromised service they were
sent to, a pod reading traffic) can't use them for anything else: each replay below is refused, by
``verify`` and by a real chassis app through ``require_principal``, which takes the audience, method
and target from the request itself.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import request
from flask.testing import FlaskClient

from flotilla.app import create_app
from flotilla.config import PlatformSettings
from flotilla.principal import (
    CLOCK_SKEW_SECONDS,
    TTL_SECONDS,
    Principal,
    current_principal,
    request_target,
    require_principal,
    sign,
    verify,
)

SECRET = "principal-binding-tests-secret-of-48-characters!"
ALICE = Principal("alice", frozenset({"cart"}), "store-web")
NOW = 1_000_000.0
SIGNED_FOR = {"audience": "catalog", "method": "GET", "path": "/products?category=tea&limit=3"}


@pytest.fixture
def captured() -> dict[str, str]:
    return sign(ALICE, SECRET, **SIGNED_FOR, now=NOW)


def test_a_fresh_signature_for_this_very_request_is_accepted(captured: dict[str, str]) -> None:
    assert verify(captured, SECRET, **SIGNED_FOR, now=NOW) == ALICE
    assert verify(captured, SECRET, **SIGNED_FOR, now=NOW + TTL_SECONDS) == ALICE


@pytest.mark.parametrize(
    "replayed_to",
    [
        pytest.param({"audience": "cart"}, id="another service"),
        pytest.param({"method": "POST"}, id="another method"),
        pytest.param({"method": "DELETE"}, id="a destructive method"),
        pytest.param({"path": "/categories?category=tea&limit=3"}, id="another path"),
        pytest.param({"path": "/products/?category=tea&limit=3"}, id="a trailing slash"),
        pytest.param({"path": "/products?category=tea&limit=300"}, id="another query value"),
        pytest.param({"path": "/products?category=tea&limit=3&all=1"}, id="an added parameter"),
        pytest.param({"path": "/products?limit=3&category=tea"}, id="reordered parameters"),
        pytest.param({"path": "/products"}, id="no query"),
    ],
)
def test_a_replay_to_another_request_is_refused(
    captured: dict[str, str], replayed_to: dict[str, str]
) -> None:
    assert verify(captured, SECRET, **(SIGNED_FOR | replayed_to), now=NOW) is None


@pytest.mark.parametrize(
    "now",
    [
        pytest.param(NOW + TTL_SECONDS + CLOCK_SKEW_SECONDS + 0.5, id="expired"),
        pytest.param(NOW + 60, id="within the old 60 s window"),
        pytest.param(NOW - CLOCK_SKEW_SECONDS - 0.5, id="good for longer than the gateway signs"),
    ],
)
def test_outside_its_window_it_is_refused(captured: dict[str, str], now: float) -> None:
    assert verify(captured, SECRET, **SIGNED_FOR, now=now) is None


@pytest.mark.parametrize(
    ("signed", "received"),
    [
        ("/a%2fb?x=%2f", "/a/b?x=%2F"),  # hex case; %2F in a path is a / once the server decodes it
        ("/caf%C3%A9?q=%7E", "/café?q=~"),  # non-ASCII goes as UTF-8; unreserved needn't be escaped
        ('/items?q=a b&r="1"', "/items?q=a%20b&r=%221%22"),  # what an HTTP client escapes on the way
    ],
)
def test_spellings_that_mean_the_same_request_verify(signed: str, received: str) -> None:
    headers = sign(ALICE, SECRET, audience="catalog", method="get", path=signed, now=NOW)
    assert verify(headers, SECRET, audience="catalog", method="GET", path=received, now=NOW) == ALICE


def test_an_escaped_delimiter_is_a_different_query() -> None:
    headers = sign(ALICE, SECRET, audience="catalog", method="GET", path="/p?q=a%26admin%3D1", now=NOW)
    assert verify(headers, SECRET, audience="catalog", method="GET", path="/p?q=a&admin=1", now=NOW) is None


def test_a_field_with_a_newline_is_never_signed() -> None:
    # It would shift the fields of the signed string: "alice\ncart" as the subject and no scopes
    # would sign the same lines as "alice" with the scope "cart".
    with pytest.raises(ValueError, match="newline"):
        sign(Principal("alice\ncart", frozenset()), SECRET, **SIGNED_FOR)


def _service(name: str) -> FlaskClient:
    app = create_app(name, platform=PlatformSettings(principal_secret=SECRET, access_log=False))

    @require_principal("cart")
    def view(rest: str) -> dict[str, Any]:
        return {"subject": current_principal(SECRET).subject, "target": request_target(request.environ)}

    app.add_url_rule("/<path:rest>", "view", view, methods=["GET", "POST", "DELETE"])
    return app.test_client()


def test_a_service_checks_its_own_name_method_and_target() -> None:
    catalog, cart = _service("catalog"), _service("cart")
    headers = sign(ALICE, SECRET, **SIGNED_FOR)
    answer = catalog.get(SIGNED_FOR["path"], headers=headers)
    assert answer.json == {"subject": "alice", "target": SIGNED_FOR["path"]}
    replays = [
        cart.get(SIGNED_FOR["path"], headers=headers),
        catalog.post(SIGNED_FOR["path"], headers=headers),
        catalog.get("/orders?category=tea&limit=3", headers=headers),
        catalog.get("/products?category=coffee&limit=3", headers=headers),
        catalog.get(SIGNED_FOR["path"], headers=sign(ALICE, SECRET, **SIGNED_FOR, now=time.time() - 40)),
    ]
    for replay in replays:
        assert replay.status_code == 401, replay.get_data(as_text=True)
        assert replay.mimetype == "application/problem+json"
