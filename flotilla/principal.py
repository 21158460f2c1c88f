"""Who is calling: the identity the gateway authenticated, passed to services in signed headers.

Services never see end-user tokens. The gateway verifies the JWT or API key, then forwards the
subject, scopes and client in ``X-Flotilla-*`` headers with an HMAC over them (and a timestamp),
keyed by a secret only the gateway and the services hold. A request that reaches a service any
other way (a pod in the cluster, a forged header) has no valid signature and is refused; on EKS
the NetworkPolicies say the same thing at the network layer.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request
from werkzeug.datastructures import Headers

from flotilla.api import GUARDS
from flotilla.errors import ProblemError

SUBJECT = "X-Flotilla-Subject"
SCOPES = "X-Flotilla-Scopes"
CLIENT = "X-Flotilla-Client"
ISSUED = "X-Flotilla-Issued"
SIGNATURE = "X-Flotilla-Signature"
HEADERS = (SUBJECT, SCOPES, CLIENT, ISSUED, SIGNATURE)

MAX_AGE_SECONDS = 60.0

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]
    client: str = ""

    def has(self, scope: str) -> bool:
        return scope in self.scopes


def _mac(secret: str, subject: str, scopes: str, client: str, issued: str) -> str:
    if not secret.strip():
        # With an empty key anyone can compute the MAC: never sign or trust with one.
        raise ValueError("the principal secret is empty")
    message = "\n".join((subject, scopes, client, issued)).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(principal: Principal, secret: str, now: float | None = None) -> dict[str, str]:
    """The headers the gateway adds for ``principal``."""
    scopes = " ".join(sorted(principal.scopes))
    issued = f"{now if now is not None else time.time():.3f}"
    return {
        SUBJECT: principal.subject,
        SCOPES: scopes,
        CLIENT: principal.client,
        ISSUED: issued,
        SIGNATURE: _mac(secret, principal.subject, scopes, principal.client, issued),
    }


def verify(
    headers: Mapping[str, str] | Headers,
    secret: str,
    now: float | None = None,
    max_age: float = MAX_AGE_SECONDS,
) -> Principal | None:
    """The principal if the headers carry a valid, fresh signature; ``None`` otherwise."""
    subject, signature, issued = headers.get(SUBJECT), headers.get(SIGNATURE), headers.get(ISSUED)
    if not subject or not signature or not issued:
        return None
    scopes, client = headers.get(SCOPES, ""), headers.get(CLIENT, "")
    expected = _mac(secret, subject, scopes, client, issued)
    if not hmac.compare_digest(expected, signature):
        return None
    try:
        age = (now if now is not None else time.time()) - float(issued)
    except ValueError:
        return None
    if not -5.0 <= age <= max_age:
        return None
    return Principal(subject, frozenset(scopes.split()), client)


def current_principal(secret: str) -> Principal:
    """The verified caller of this request, or 401 problem+json (cached per request)."""
    found = g.get("_flotilla_principal")
    if found is None:
        found = verify(request.headers, secret)
        if found is None:
            raise ProblemError(401, "Unauthorized", "this service only accepts requests through the gateway")
        g._flotilla_principal = found
    principal: Principal = found
    return principal


def require(secret_of: Callable[[], str], scope: str | None = None) -> Callable[[F], F]:
    """Decorator: the view needs a gateway-verified caller, and ``scope`` when given (else 403)."""

    def check() -> None:
        principal = current_principal(secret_of())
        if scope and not principal.has(scope):
            raise ProblemError(403, "Forbidden", f"this needs the {scope!r} scope")

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            check()  # again, for plain Flask apps; cheap, the principal is cached per request
            return view(*args, **kwargs)

        setattr(guarded, GUARDS, (*getattr(view, GUARDS, ()), check))
        return guarded  # type: ignore[return-value]

    return decorate


def platform_secret() -> str:
    """``FLOTILLA_PRINCIPAL_SECRET`` of the app's platform settings (set by ``flotilla.create_app``)."""
    platform = current_app.extensions.get("flotilla.platform")
    secret = getattr(platform, "principal_secret", None)
    if secret is None:
        raise ProblemError(503, "Service Unavailable", "no principal secret is configured")
    return str(secret.get_secret_value())


def require_principal(scope: str | None = None) -> Callable[[F], F]:
    """``require`` with the secret from the platform settings: the usual decorator for services."""
    return require(platform_secret, scope)
