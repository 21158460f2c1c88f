"""Verify Cognito-shaped JWT bearer tokens against a JWKS URL.

The checks are the ones Cognito's own guidance lists, and nothing is taken from the token itself
before its signature holds: the algorithm is pinned to RS256 (so ``alg: none`` and an HS256 token
signed with the public key as a secret are refused before any key is looked at), the issuer must
match exactly, expiry allows a small leeway for clock skew, and ``token_use`` decides which audience
claim applies: an access token names its app client in ``client_id`` and has no ``aud``; an id
token names it in ``aud``.

Keys are cached. A token signed with a ``kid`` the cache lacks triggers one refetch (a rotation has
happened), but refetches are spaced at least ``min_refresh_seconds`` apart, so a flood of tokens
with made-up ``kid`` values costs one JWKS request per interval, not one per token.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jwt
from jwt.algorithms import RSAAlgorithm

from flotilla.clock import SYSTEM_CLOCK, Clock
from flotilla.outage import Outage

if TYPE_CHECKING:  # httpx is imported when a JWKS cache is made: verifying alone doesn't need it
    import httpx

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
TOKEN_USES = frozenset({"access", "id"})


class InvalidToken(Exception):
    """The token is not acceptable; ``str(err)`` says why, in words safe to return to the client."""


class JwksUnavailable(InvalidToken):
    """No key could be had to check the token with (the JWKS is unreachable and nothing is cached)."""


@dataclass(frozen=True)
class Claims:
    """A verified token: who, for which app client, with which scopes, and every claim as sent."""

    subject: str
    client: str
    token_use: str
    scopes: frozenset[str]
    raw: Mapping[str, Any] = field(repr=False)


class JwksCache:
    """The signing keys published at ``url``, fetched lazily, kept for ``ttl_seconds``.

    Thread-safe. A failed fetch keeps the keys already known: a JWKS outage only hurts tokens
    signed with a key we have never seen. Fetches, failed or not, are spaced ``min_refresh_seconds``
    apart (``force`` aside) by an :class:`~flotilla.outage.Outage`, which also logs an outage once.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl_seconds: float = 3600.0,
        min_refresh_seconds: float = 30.0,
        timeout_seconds: float = 2.0,
        clock: Clock = SYSTEM_CLOCK,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        import httpx

        self._http = httpx.Client(timeout=timeout_seconds, transport=transport, trust_env=False)
        self._fetch_errors: tuple[type[Exception], ...] = (httpx.HTTPError, ValueError)
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._outage = Outage(
            f"JWKS {url}",
            "refusing tokens signed with keys not fetched yet",
            retry_seconds=min_refresh_seconds,
            clock=clock,
            logger=log,
        )
        self.fetches = 0

    @property
    def min_refresh_seconds(self) -> float:
        """The shortest time between two fetches (``force`` aside)."""
        return self._outage.retry_seconds

    def key(self, kid: str) -> Any:
        """The public key for ``kid``, refetching the set once if it is unknown or stale."""
        key = self._keys.get(kid)
        if key is not None and not self._stale():
            return key
        self.refresh(force=False)
        key = self._keys.get(kid)
        if key is None:
            if self._fetched_at is None:
                raise JwksUnavailable("the signing keys could not be fetched")
            raise InvalidToken(f"unknown signing key {kid[:64]!r}")
        return key

    def refresh(self, *, force: bool) -> bool:
        """Fetch the key set unless one was tried within ``min_refresh_seconds`` (``force`` skips
        that wait). True when a fetch succeeded now."""
        with self._lock:
            if not force and not self._outage.worth_trying():
                return False
            now = self._clock.monotonic()
            self.fetches += 1
            try:
                response = self._http.get(self.url, headers={"Accept": "application/json"})
                response.raise_for_status()
                keys = _parse_jwks(response.json())
            except self._fetch_errors as err:
                self._outage.failed(err)
                return False
            self._keys = keys
            self._fetched_at = now
            self._outage.succeeded()
            self._outage.hold()
            return True

    def check(self) -> None:
        """Readiness: raise unless a key set is held that is fresh, or can be fetched now."""
        if self._fetched_at is None or self._stale():
            self.refresh(force=False)
        if self._fetched_at is None or not self._keys:
            raise JwksUnavailable(f"no signing keys from {self.url}")

    def close(self) -> None:
        self._http.close()

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock.monotonic() - self._fetched_at >= self.ttl_seconds


def _parse_jwks(document: Any) -> dict[str, Any]:
    """RSA signing keys by ``kid``; anything else in the set (encryption keys, other types) is skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (no 'keys' list)")
    keys: dict[str, Any] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or not jwk.get("kid"):
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("alg", ALGORITHM) != ALGORITHM:
            continue
        keys[str(jwk["kid"])] = RSAAlgorithm.from_jwk(json.dumps(jwk))
    return keys


@dataclass(frozen=True)
class TokenPolicy:
    """What a token must say to be accepted.

    ``client_ids`` are the app clients whose access tokens are accepted (``client_id`` claim);
    ``audiences`` the ones whose id tokens are (``aud``). An empty collection accepts none of
    that kind, so leaving ``audiences`` empty turns id tokens off.
    """

    issuer: str
    client_ids: Collection[str] = ()
    audiences: Collection[str] = ()
    token_uses: Collection[str] = TOKEN_USES
    leeway_seconds: float = 30.0


class TokenVerifier:
    """``verify(token) -> Claims`` or ``InvalidToken``; one per process, thread-safe."""

    def __init__(self, policy: TokenPolicy, jwks: JwksCache, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.policy = policy
        self.jwks = jwks
        self._clock = clock

    def verify(self, token: str) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:  # not decodable, or a header PyJWT refuses (a non-string kid, say)
            raise InvalidToken("the token is not a well-formed JWT") from None
        if "crit" in header:
            # RFC 7515 4.1.11: extensions we don't implement must make the token invalid.
            raise InvalidToken("the token requires extensions this gateway does not support (crit)")
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise InvalidToken(f"algorithm {str(alg)[:16]!r} is not accepted (only {ALGORITHM})")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no signing key (kid)")
        key = self.jwks.key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self.policy.issuer,
                leeway=self.policy.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "sub", "token_use"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("the token's signature does not verify") from None
        except jwt.MissingRequiredClaimError as err:
            raise InvalidToken(f"the token has no {err.claim!r} claim") from None
        except jwt.PyJWTError as err:
            raise InvalidToken(f"the token is invalid: {type(err).__name__}") from None
        return self._accept(claims)

    def _accept(self, claims: dict[str, Any]) -> Claims:
        use = claims.get("token_use")
        if use not in TOKEN_USES or use not in self.policy.token_uses:
            raise InvalidToken(f"token_use {str(use)[:16]!r} is not accepted")
        if use == "access":
            client = claims.get("client_id")
            if not isinstance(client, str) or client not in self.policy.client_ids:
                raise InvalidToken("the token was issued to another client")
            scopes = frozenset(str(claims.get("scope", "")).split())
        else:
            aud = claims.get("aud")
            audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
            matched = [a for a in audiences if a in self.policy.audiences]
            if not matched:
                raise InvalidToken("the token is for another audience")
            client = str(matched[0])
            groups = claims.get("cognito:groups", [])
            scopes = frozenset(str(g) for g in groups) if isinstance(groups, list) else frozenset()
        return Claims(subject=str(claims["sub"]), client=client, token_use=use, scopes=scopes, raw=claims)
