"""Token forging and answer checks shared by the gateway tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from flotilla_dev.issuer import DevIssuer, public_jwk

from tests.gateway.conftest import CLIENT_ID


def claims(issuer: DevIssuer, **override: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": issuer.url,
        "sub": "alice",
        "client_id": CLIENT_ID,
        "token_use": "access",
        "scope": "cart",
        "iat": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
    }
    return {k: v for k, v in (base | override).items() if v is not None}


def current_kid(issuer: DevIssuer) -> str:
    return str(issuer.jwks()["keys"][-1]["kid"])


def signed(payload: dict[str, Any], key: rsa.RSAPrivateKey, kid: str) -> str:
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict[str, Any], kid: str) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    return f"{header}.{_b64(json.dumps(payload).encode())}."


def hs256_with_public_key(payload: dict[str, Any], issuer: DevIssuer) -> str:
    """The classic confusion attack: HMAC keyed with the (public) JWK's modulus text."""
    jwk = issuer.jwks()["keys"][-1]
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": jwk["kid"]}).encode())
    body = _b64(json.dumps(payload).encode())
    mac = hmac.new(json.dumps(jwk).encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(mac)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def assert_invalid_token(response: requests.Response, reason: str) -> None:
    body = assert_problem(response, 401)
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    assert reason in body["detail"]


__all__ = ["public_jwk"]
