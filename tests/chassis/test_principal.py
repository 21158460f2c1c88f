"""Signed principal headers: only a caller holding the gateway's secret can assert an identity."""

from __future__ import annotations

from flask import Flask

from flotilla.api import Model
from flotilla.errors import Problems
from flotilla.principal import SIGNATURE, SUBJECT, Principal, current_principal, require, sign, verify

SECRET = "gateway-shared-secret"


class NewThing(Model):
    name: str


def test_round_trip() -> None:
    alice = Principal("alice", frozenset({"cart", "orders"}), "web")
    assert verify(sign(alice, SECRET), SECRET) == alice


def test_tampering_wrong_secret_and_staleness_are_refused() -> None:
    headers = sign(Principal("alice", frozenset({"cart"})), SECRET, now=1000.0)
    assert verify(headers, SECRET, now=1010.0) is not None
    assert verify({**headers, SUBJECT: "mallory"}, SECRET, now=1010.0) is None
    assert verify({**headers, "X-Flotilla-Scopes": "cart admin"}, SECRET, now=1010.0) is None
    assert verify(headers, "another-secret", now=1010.0) is None
    assert verify(headers, SECRET, now=1000.0 + 61) is None
    assert verify({k: v for k, v in headers.items() if k != SIGNATURE}, SECRET) is None


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
    signed = sign(Principal("alice", frozenset({"cart"})), SECRET)
    assert client.get("/mine", headers=signed).json == {"sub": "alice"}
    denied = client.post("/admin", headers=signed)
    assert denied.status_code == 403
    assert denied.mimetype == "application/problem+json"
    admin_headers = sign(Principal("root", frozenset({"admin"})), SECRET)
    assert client.post("/admin", headers=admin_headers).json == {"ok": True}


def test_authorization_is_checked_before_the_body_is_validated() -> None:
    from flotilla.app import create_app
    from flotilla.config import PlatformSettings
    from flotilla.principal import require_principal

    app = create_app("guarded", platform=PlatformSettings(principal_secret=SECRET))

    @app.post("/things")
    @require_principal("admin")
    def create(body: NewThing) -> dict[str, str]:
        return {"name": body.name}

    client = app.test_client()
    assert client.post("/things", json={"bogus": 1}).status_code == 401
    signed = sign(Principal("bob", frozenset({"cart"})), SECRET)
    assert client.post("/things", json={"bogus": 1}, headers=signed).status_code == 403
    admin = sign(Principal("root", frozenset({"admin"})), SECRET)
    assert client.post("/things", json={"bogus": 1}, headers=admin).status_code == 422
    assert client.post("/things", json={"name": "x"}, headers=admin).json == {"name": "x"}
