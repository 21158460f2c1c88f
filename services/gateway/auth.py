"""Who is calling: a bearer JWT, an API key, or nobody; and whether that caller may use a route.

Every failure is a problem+json answer with the RFC 6750 challenge a client can act on: 401 with
``error="invalid_token"`` for a token (or key) that is not accepted, 401 without an error code when
a route needs credentials and none came, 403 with ``error="insufficient_scope"`` when the caller
lacks the route's scope.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from werkzeug.datastructures import Headers

from flotilla.auth import InvalidToken, TokenVerifier
from flotilla.errors import ProblemError
from services.gateway.settings import AUTHENTICATED, PUBLIC, ApiKeySpec

API_KEY_HEADER = "X-Api-Key"
REALM = "flotilla"
_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')


@dataclass(frozen=True)
class Caller:
    """A verified caller (``kind`` is ``jwt`` or ``api-key``) or the anonymous one."""

    kind: str
    subject: str
    scopes: frozenset[str]
    client: str = ""
    api_key: ApiKeySpec | None = None

    @property
    def anonymous(self) -> bool:
        return self.kind == "anonymous"

    def throttle_key(self, client_ip: str) -> str:
        if self.kind == "api-key":
            return f"key:{self.client}"
        if self.kind == "jwt":
            return f"sub:{self.subject}"
        return f"ip:{client_ip}"


ANONYMOUS = Caller("anonymous", "", frozenset())


def _challenge(error: str | None = None, description: str | None = None, scope: str | None = None) -> str:
    parts = [f'realm="{REALM}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{_UNSAFE.sub("", description)}"')
    if scope:
        parts.append(f'scope="{_UNSAFE.sub("", scope)}"')
    return "Bearer " + ", ".join(parts)


def unauthorized(detail: str, *, error: str | None = "invalid_token") -> ProblemError:
    return ProblemError(
        401,
        "Unauthorized",
        detail,
        type=f"urn:flotilla:problem:{(error or 'unauthorized').replace('_', '-')}",
        headers={
            "WWW-Authenticate": _challenge(error, detail if error else None),
            "Cache-Control": "no-store",
        },
    )


class Authenticator:
    """Turns a request's credentials into a ``Caller``; ``verifier`` is None when no issuer is set."""

    def __init__(self, verifier: TokenVerifier | None, api_keys: Mapping[str, ApiKeySpec]) -> None:
        self.verifier = verifier
        self._keys = {spec.sha256: (name, spec) for name, spec in api_keys.items()}

    def authenticate(self, headers: Headers | Mapping[str, str]) -> Caller:
        authorization = headers.get("Authorization")
        api_key = headers.get(API_KEY_HEADER)
        if authorization is not None and api_key is not None:
            raise unauthorized("send a bearer token or an API key, not both", error="invalid_request")
        if api_key is not None:
            return self._api_key(api_key)
        if authorization is not None:
            return self._bearer(authorization)
        return ANONYMOUS

    def _bearer(self, authorization: str) -> Caller:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("the Authorization header must be 'Bearer <token>'", error="invalid_request")
        if self.verifier is None:
            raise unauthorized("this gateway accepts no bearer tokens (no issuer is configured)")
        try:
            claims = self.verifier.verify(token.strip())
        except InvalidToken as err:
            raise unauthorized(str(err)) from None
        return Caller("jwt", claims.subject, claims.scopes, claims.client)

    def _api_key(self, presented: str) -> Caller:
        # Keys are random and long, so a plain digest is the right hash here (unlike passwords),
        # and looking the digest up leaks nothing useful about any key.
        found = self._keys.get(hashlib.sha256(presented.strip().encode()).hexdigest())
        if found is None:
            raise unauthorized("the API key is not valid")
        name, spec = found
        return Caller("api-key", f"apikey:{name}", frozenset(spec.scopes), name, spec)


def authorize(caller: Caller, rule: str) -> None:
    """Raise unless ``caller`` satisfies the route's access ``rule`` (public, authenticated, a scope)."""
    if rule == PUBLIC:
        return
    if caller.anonymous:
        raise unauthorized("this route needs a bearer token or an API key", error=None)
    if rule == AUTHENTICATED or rule in caller.scopes:
        return
    raise ProblemError(
        403,
        "Forbidden",
        f"this route needs the {rule!r} scope",
        type="urn:flotilla:problem:insufficient-scope",
        headers={"WWW-Authenticate": _challenge("insufficient_scope", scope=rule)},
    )
