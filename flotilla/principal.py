"""Who is calling: the identity the gateway authenticated, passed to services in signed headers.

Services never see end-user tokens. The gateway verifies the JWT or API key, then forwards the
subject, scopes and client in ``X-Flotilla-*`` headers with an HMAC-SHA256 over them, keyed by a
secret only the gateway and the services hold. The MAC also covers the one request it was made for:
the audience (the service it is sent to), the method, the path and query as that service receives
them, and an expiry ``TTL_SECONDS`` ahead. A header set captured inside the cluster is therefore worth
that one request: replayed to another service, with another method, path or query, or after it
expires, it is refused (401). The signed string, one field a line::

    flotilla-principal-v2
    <audience>            catalog
    <METHOD>              GET
    <target>              /products/COF-0001?limit=3   (canonical, see request_target)
    <subject>
    <scopes>              space-separated, sorted
    <client>
    <expires>             Unix seconds, three decimals

Not covered: the body (a service checks the caller before it reads the body, and a MAC over it could
only be checked after reading all of it, which would also rule out streaming bodies through the
gateway); and a replay of the same request to the same service within the expiry, by someone who can
read the traffic (the mesh's mTLS is what stops that). A request that reaches a service any other way
(a pod in the cluster, a forged header) has no valid signature and is refused; the NetworkPolicies say
the same thing at the network layer. docs/gateway.md has the whole picture.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import quote, unquote_to_bytes

from flask import current_app, g, request
from werkzeug.datastructures import Headers

from flotilla.api import GUARDS
from flotilla.errors import ProblemError

SUBJECT = "X-Flotilla-Subject"
SCOPES = "X-Flotilla-Scopes"
CLIENT = "X-Flotilla-Client"
EXPIRES = "X-Flotilla-Expires"
SIGNATURE = "X-Flotilla-Signature"
HEADERS = (SUBJECT, SCOPES, CLIENT, EXPIRES, SIGNATURE)

# The gateway signs right before it forwards, and a service checks before it reads the body: the
# window only has to cover one hop and the client's retries (its whole-call timeout is 5 s by default).
TTL_SECONDS = 30.0
# How far a service's clock may be from the gateway's, either way, before a fresh signature looks
# expired (or one looks good for longer than the gateway ever signs).
CLOCK_SKEW_SECONDS = 5.0

_VERSION = "flotilla-principal-v2"  # first line of the signed text: a new layout can't verify as this one
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# A %XX escape, or a byte a query carries escaped (anything but unreserved, sub-delims, : @ / ?).
_QUERY_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~!$&'()*+,;=:@/?]")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]
    client: str = ""

    def has(self, scope: str) -> bool:
        return scope in self.scopes


def _escape(match: re.Match[bytes]) -> bytes:
    if match.group(1) is None:
        return b"%%%02X" % match.group(0)[0]
    byte = int(match.group(1), 16)
    return bytes((byte,)) if byte in _UNRESERVED else b"%%%02X" % byte


def _canonical(path: bytes, query: bytes) -> str:
    # The path as the service routes on it (decoded, so %2F and / are the same, as they are to
    # Flask), then escaped again; the query kept as sent, with only the spellings an HTTP client may
    # change made one: hex in upper case, unreserved bytes unescaped, anything unsafe escaped.
    # ``&`` and ``%26`` stay different, because to the service they are.
    canonical = quote(path, safe="/")
    return f"{canonical}?{_QUERY_ESCAPE.sub(_escape, query).decode('ascii')}" if query else canonical


def request_target(environ: Mapping[str, Any]) -> str:
    """The path and query of a WSGI request in the canonical form a signature covers.

    Built from ``SCRIPT_NAME`` + ``PATH_INFO`` (decoded, latin-1 per PEP 3333) and ``QUERY_STRING``
    (as sent), which every WSGI server and the Flask test client fill the same way, unlike the raw
    request line (``RAW_URI`` under gunicorn, absent elsewhere).
    """
    path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    return _canonical(path.encode("latin-1"), str(environ.get("QUERY_STRING", "")).encode("latin-1"))


def _canonical_target(target: str) -> str:
    # ``target`` as an HTTP client sends it: percent-encoded, non-ASCII as UTF-8. A target that is
    # already canonical (request_target's) comes back unchanged.
    path, _, query = target.partition("?")
    return _canonical(unquote_to_bytes(path), query.encode())


def _mac(secret: str, fields: tuple[str, ...]) -> str:
    if not secret.strip():
        # With an empty key anyone can compute the MAC: never sign or trust with one.
        raise ValueError("the principal secret is empty")
    if any("\n" in field for field in fields):
        raise ValueError("a signed field may not contain a newline")  # it would shift the fields
    return hmac.new(secret.encode(), "\n".join((_VERSION, *fields)).encode(), hashlib.sha256).hexdigest()


def sign(
    principal: Principal,
    secret: str,
    *,
    audience: str,
    method: str,
    path: str,
    now: float | None = None,
) -> dict[str, str]:
    """The headers the gateway adds for ``principal`` on one request: ``method path`` (the path and
    query exactly as sent) to the service ``audience``, good for ``TTL_SECONDS``."""
    scopes = " ".join(sorted(principal.scopes))
    expires = f"{(now if now is not None else time.time()) + TTL_SECONDS:.3f}"
    target = (audience, method.upper(), _canonical_target(path))
    return {
        SUBJECT: principal.subject,
        SCOPES: scopes,
        CLIENT: principal.client,
        EXPIRES: expires,
        SIGNATURE: _mac(secret, (*target, principal.subject, scopes, principal.client, expires)),
    }


def verify(
    headers: Mapping[str, str] | Headers,
    secret: str,
    *,
    audience: str,
    method: str,
    path: str,
    now: float | None = None,
) -> Principal | None:
    """The principal if the headers carry a valid signature for this request (``audience``,
    ``method``, ``path`` with its query) that has not expired; ``None`` otherwise."""
    subject, signature, expires = headers.get(SUBJECT), headers.get(SIGNATURE), headers.get(EXPIRES)
    if not subject or not signature or not expires:
        return None
    scopes, client = headers.get(SCOPES, ""), headers.get(CLIENT, "")
    target = (audience, method.upper(), _canonical_target(path))
    expected = _mac(secret, (*target, subject, scopes, client, expires))
    if not hmac.compare_digest(expected, signature):
        return None
    try:
        left = float(expires) - (now if now is not None else time.time())
    except ValueError:
        return None
    # Expired, or good for longer than the gateway ever signs (a clock far off): refused either way.
    if not -CLOCK_SKEW_SECONDS <= left <= TTL_SECONDS + CLOCK_SKEW_SECONDS:
        return None
    return Principal(subject, frozenset(scopes.split()), client)


def current_principal(secret: str) -> Principal:
    """The verified caller of this request, or 401 problem+json (cached per request).

    The audience is the app's name: ``flotilla.create_app(service)`` names the app after the
    service, and the gateway signs for the route's upstream, which is that same name.
    """
    found = g.get("_flotilla_principal")
    if found is None:
        found = verify(
            request.headers,
            secret,
            audience=current_app.name,
            method=request.method,
            path=request_target(request.environ),
        )
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
