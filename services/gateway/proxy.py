"""Forwarding one request to its upstream through ``ServiceClient`` and shaping the answer back.

Headers are filtered both ways. Hop-by-hop headers (RFC 9110 section 7.6.1: Connection, Keep-Alive,
TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*, and whatever Connection names) describe one
connection and must not cross the gateway. Towards the service, the caller's credentials and any
``X-Flotilla-*`` header are dropped, so the only identity a service sees is the one the gateway
signed; trace context and the request id are dropped too, because ``ServiceClient`` sends the
gateway's own (a child of the caller's trace, the sanitized request id).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote

import httpx
from flask import Request, Response

from flotilla.errors import ProblemError
from flotilla.http import ServiceClient

HOP_BY_HOP = frozenset({"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"})

# Dropped from requests on top of the hop-by-hop ones (lower case).
_REQUEST_DROP = frozenset(
    {
        "host",
        "content-length",
        "authorization",
        "x-api-key",
        "cookie",
        "accept-encoding",
        "traceparent",
        "tracestate",
        "baggage",
        "x-amzn-trace-id",
        "x-request-id",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-prefix",
        "x-forwarded-port",
    }
)
# Dropped from answers: the server of the outer hop sets these, and the gateway owns CORS.
_RESPONSE_DROP = frozenset({"content-length", "content-encoding", "date", "server"})
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_COMMA = re.compile(r"\s*,\s*")


def hop_by_hop(headers: Iterable[tuple[str, str]]) -> set[str]:
    """The lower-case names not to forward: the fixed set, Proxy-*, and those listed in Connection."""
    names = set(HOP_BY_HOP)
    for name, value in headers:
        if name.lower() == "connection":
            names.update(token.lower() for token in _COMMA.split(value.strip()) if token)
    return names


def _keep(name: str, drop: set[str], extra: frozenset[str]) -> bool:
    lower = name.lower()
    return lower not in drop and lower not in extra and not lower.startswith(("proxy-", "x-flotilla-"))


def request_headers(incoming: Iterable[tuple[str, str]], extra: Mapping[str, str]) -> dict[str, str | bytes]:
    """What goes to the upstream: the caller's end-to-end headers plus the gateway's own ``extra``.

    The caller's values go on as the bytes that came in: WSGI hands them over decoded as latin-1
    (PEP 3333), so encoding them back is lossless, and a value that isn't ASCII (``café`` in UTF-8,
    say) is forwarded as opaque bytes instead of failing the HTTP client's ASCII encoding.
    """
    pairs = list(incoming)
    drop = hop_by_hop(pairs)
    forwarded: dict[str, bytes] = {}
    for name, value in pairs:
        if _keep(name, drop, _REQUEST_DROP):
            raw = value.encode("latin-1")
            forwarded[name] = forwarded[name] + b", " + raw if name in forwarded else raw
    out: dict[str, str | bytes] = dict(forwarded)
    out["Accept-Encoding"] = "identity"  # the body is buffered and handed on as it came
    out.update(extra)
    return out


# What every chassis service serves for the platform (probes, Prometheus, its own API document): the
# cluster reaches them directly, callers through the gateway never do (the gateway serves the store's
# aggregated /openapi.json itself).
INTERNAL_PATHS = frozenset({"/livez", "/readyz", "/metrics", "/openapi.json"})


def upstream_path(prefix: str, rest: str) -> str:
    """The path on the upstream; ``.`` and ``..`` segments are refused so no path escapes the prefix,
    and a service's internal endpoints are 404 however the path spells them (``//metrics``)."""
    segments = rest.split("/")
    if any(s in (".", "..") for s in segments):
        raise ProblemError(400, "Bad Request", "the path may not contain '.' or '..' segments")
    if not rest:  # /api/v1/cart with prefix /cart is the upstream's /cart, not /cart/
        return prefix or "/"
    path = prefix + "/" + quote(rest, safe=_PATH_SAFE)
    if "/" + "/".join(s for s in path.split("/") if s) in INTERNAL_PATHS:
        raise ProblemError(404, "Not Found", "no such route")
    return path


def upstream_target(path: str, request: Request) -> str:
    """The path and query the upstream is sent: the query exactly as the caller sent it."""
    query = request.query_string.decode("latin-1")
    return f"{path}?{query}" if query else path


def forward(
    client: ServiceClient,
    upstream: str,
    request: Request,
    target: str,
    extra_headers: Mapping[str, str],
) -> Response:
    """Send the request on to ``target`` (``upstream_target``: path and query) and turn the upstream's
    answer into ours (errors raise as problem+json)."""
    body = request.get_data(cache=False) if request.method not in ("GET", "HEAD") else b""
    answer = client.request(
        upstream,
        request.method,
        target,
        headers=request_headers(request.headers.items(), extra_headers),
        content=body or None,
    )
    return _response(answer)


def _response(answer: httpx.Response) -> Response:
    pairs = list(answer.headers.multi_items())
    drop = hop_by_hop(pairs)
    response = Response(answer.content, status=answer.status_code)
    response.headers.clear()
    for name, value in pairs:
        if _keep(name, drop, _RESPONSE_DROP) and not name.lower().startswith("access-control-"):
            response.headers.add(name, value)
    return response


def relocate(response: Response, prefix: str, public: str) -> Response:
    """A ``Location`` the upstream wrote in its own paths, rewritten to the path clients call.

    ``/categories/tea`` from a service routed at ``/api/v1/catalog`` is ``/api/v1/catalog/categories/tea``
    to the client; absolute URLs and paths outside the route's prefix are left alone.
    """
    location = response.headers.get("Location") or ""
    own_path = location.startswith("/") and not location.startswith("//")
    if own_path and (not prefix or location == prefix or location.startswith(prefix + "/")):
        response.headers["Location"] = public + location[len(prefix) :]
    return response
