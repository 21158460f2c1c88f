"""A stand-in for the Cognito user pool on one machine: an RSA key, tokens signed with it, its JWKS.

Only for the local stack and tests. The private key lives under ``.flotilla/dev-issuer/`` (directory
0700, key files 0600), is made on first use, and is never used anywhere a real issuer exists: the
gateway only trusts it through its ``GATEWAY_JWT_ISSUER``, which defaults to this issuer's URL when
``FLOTILLA_ENV=local`` and to nothing otherwise.

Tokens carry the claims of a Cognito access token (``iss``, ``sub``, ``client_id``,
``token_use=access``, ``scope``, ``exp``, ``iat``, ``jti``, ``auth_time``, ``kid`` in the header),
so the gateway runs exactly the checks it runs in production.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, jsonify

DEFAULT_DIR = Path(".flotilla/dev-issuer")
DEFAULT_URL = "http://127.0.0.1:8090"
DEFAULT_CLIENT_ID = "flotilla-local"
JWKS_PATH = "/.well-known/jwks.json"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def public_jwk(key: rsa.RSAPublicKey) -> dict[str, str]:
    """The JWK of ``key``, its ``kid`` the RFC 7638 thumbprint (stable for the same key)."""
    numbers = key.public_numbers()
    members = {"e": _int_b64(numbers.e), "kty": "RSA", "n": _int_b64(numbers.n)}
    thumbprint = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode())
    return {**members, "kid": _b64(thumbprint.digest()), "use": "sig", "alg": "RS256"}


class DevIssuer:
    """Keys under ``directory`` (one ``<n>.pem`` each; the highest number signs, all are published)."""

    def __init__(
        self,
        directory: Path | str = DEFAULT_DIR,
        *,
        url: str = DEFAULT_URL,
        client_id: str = DEFAULT_CLIENT_ID,
    ) -> None:
        self.directory = Path(directory)
        self.url = url.rstrip("/")
        self.client_id = client_id

    def issue(
        self,
        subject: str,
        scopes: Iterable[str] = (),
        *,
        ttl_seconds: int = 3600,
        client_id: str | None = None,
        now: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A signed access token for ``subject`` with ``scopes``."""
        key = self._signing_key()
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": subject,
            "client_id": client_id or self.client_id,
            "token_use": "access",
            "scope": " ".join(scopes),
            "auth_time": issued,
            "iat": issued,
            "exp": issued + ttl_seconds,
            "jti": str(uuid.uuid4()),
            "username": subject,
        } | (extra or {})
        kid = public_jwk(key.public_key())["kid"]
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """Every key's public half (made on first use), so tokens signed before a rotation still verify."""
        if not self._numbers():
            self._signing_key()
        return {"keys": [public_jwk(self._load(n).public_key()) for n in self._numbers()]}

    def openid_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": self.url + JWKS_PATH,
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": [],
            "response_types_supported": [],
            "subject_types_supported": ["public"],
        }

    def rotate(self) -> str:
        """Make a new signing key (the old ones stay published); returns its ``kid``."""
        numbers = self._numbers()
        key = self._create(max(numbers, default=0) + 1)
        return public_jwk(key.public_key())["kid"]

    def _numbers(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        return sorted(int(p.stem) for p in self.directory.glob("*.pem") if p.stem.isdigit())

    def _signing_key(self) -> rsa.RSAPrivateKey:
        numbers = self._numbers()
        return self._load(numbers[-1]) if numbers else self._create(1)

    def _load(self, number: int) -> rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key((self.directory / f"{number}.pem").read_bytes(), None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{self.directory / f'{number}.pem'} is not an RSA key")
        return key

    def _create(self, number: int) -> rsa.RSAPrivateKey:
        """Write key ``number`` atomically; when another process wins the race, use its key."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        final = self.directory / f"{number}.pem"
        temp = self.directory / f".{number}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
            os.link(temp, final)
        except FileExistsError:
            return self._load(number)
        finally:
            temp.unlink(missing_ok=True)
        return key


def create_issuer_app(issuer: DevIssuer) -> Flask:
    """The issuer's discovery document and JWKS over HTTP (what the gateway's JWKS URL points at)."""
    app = Flask("flotilla-dev-issuer")

    @app.get(JWKS_PATH)
    def jwks() -> Response:
        return jsonify(issuer.jwks())

    @app.get("/.well-known/openid-configuration")
    def openid_configuration() -> Response:
        return jsonify(issuer.openid_configuration())

    @app.get("/livez")
    def livez() -> Response:
        return jsonify(status="ok")

    return app
