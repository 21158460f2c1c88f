"""Signed principal headers: only a caller holding the gateway's secret can assert an identity."""

from __future__ import annotations

from flask import Flask

from flotilla.api import Model
from flotilla.errors import Problems
from flotilla.principal import SIGNATURE, SUBJECT, Principal, current_principal, require, sign, verify

SECRET = "gateway-shared-secret-for-the-chassis-tests"
ITEMS = {"audience": "cart", "method": "GET", "path": "/cart/items"}


class NewThing(Model):
    name: str


def test_round_trip() -> None:
    alice = Principal("alice", frozenset({"cart", "orders"}), "web")
    assert verify(sign(alice, SECRET, **ITEMS), SECRET, **ITEMS) == alice


def test_tampering_wrong_secret_and_staleness_are_refused() -> None:
    headers = sign(Principal("alice", frozenset({"cart"})), SECRET, **ITEMS, now=1000.0)
    assert verify(headers, SECRET, **ITEMS, now=1010.0) is not None
    assert verify({**headers, SUBJECT: "mallory"}, SECRET, **ITEMS, now=1010.0) is None
    assert verify({**headers, "X-Flotilla-Scopes": "cart admin"}, SECRET, **ITEMS, now=1010.0) is None
    assert verify({**headers, "X-Flotilla-Expires": "99999999999.000"}, SECRET, **ITEMS, now=1010.0) is None
    assert verify(headers, "another-secret", **ITEMS, now=1010.0) is None
    assert verify(headers, SECRET, **ITEMS, now=1000.0 + 61) is None
    assert verify({k: v for k, v in headers.items() if k != SIGNATURE}, SECRET, **ITEMS) is None


def test_views_get_401_without_and_403_without_scope() -> None:
    app = Flask("svc")
    Problems(app)

    @app.get("/mine")
    @require(lambda: SECRET)
    def mine() -> dict[str, str]:
        return {"sub": current_principal(SECRET).subject}

    @app.post("/admin")
    @require(lambda: SECRET, scope="admin")
    def admin() -> dict[str, bool]:
        return {"ok": True}

    client = app.test_client()
    assert client.get("/mine").status_code == 401
    assert client.get("/mine", headers={SUBJECT: "alice"}).status_code == 401
    alice = Principal("alice", frozenset({"cart"}))
    mine_as_alice = sign(alice, SECRET, audience="svc", method="GET", path="/mine")
    assert client.get("/mine", headers=mine_as_alice).json == {"sub": "alice"}
    denied = client.post("/admin", headers=sign(alice, SECRET, audience="svc", method="POST", path="/admin"))
    assert denied.status_code == 403
    assert denied.mimetype == "application/problem+json"
    root = sign(Principal("root", frozenset({"admin"})), SECRET, audience="svc", method="POST", path="/admin")
    assert client.post("/admin", headers=root).json == {"ok": True}


def test_authorization_is_checked_before_the_body_is_validated() -> None:
    from flotilla.app import create_app
    from flotilla.config import PlatformSettings
    from flotilla.principal import require_principal

    app = create_app("guarded", platform=PlatformSettings(principal_secret=SECRET))

    @app.post("/things")
    @require_principal("admin")
    def create(body: NewThing) -> dict[str, str]:
        return {"name": body.name}

    things = {"audience": "guarded", "method": "POST", "path": "/things"}
    client = app.test_client()
    assert client.post("/things", json={"bogus": 1}).status_code == 401
    signed = sign(Principal("bob", frozenset({"cart"})), SECRET, **things)
    assert client.post("/things", json={"bogus": 1}, headers=signed).status_code == 403
    admin = sign(Principal("root", frozenset({"admin"})), SECRET, **things)
    assert client.post("/things", json={"bogus": 1}, headers=admin).status_code == 422
    assert client.post("/things", json={"name": "x"}, headers=admin).json == {"name": "x"}
