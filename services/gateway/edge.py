"""What every gateway answer carries at the edge: CORS for allowed origins, and security headers.

The API serves JSON only, so the Content-Security-Policy forbids everything (no scripts, no
framing): a response that a browser is tricked into rendering can do nothing.
"""

from __future__ import annotations

from collections.abc import Collection

from flask import Request, Response

from flotilla.errors import ProblemError

ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"
ALLOWED_HEADERS = frozenset(
    {
        "authorization",
        "content-type",
        "x-api-key",
        "x-request-id",
        "idempotency-key",
        "if-match",
        "traceparent",
    }
)
EXPOSED_HEADERS = (
    "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, X-Request-Id, ETag, Location"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class Cors:
    """An allow-list of origins (``*`` allows any, but credentials are never allowed)."""

    def __init__(self, origins: Collection[str], max_age_seconds: int) -> None:
        self.origins = frozenset(o.rstrip("/") for o in origins)
        self.max_age = max_age_seconds

    def allows(self, origin: str) -> bool:
        return "*" in self.origins or origin in self.origins

    @staticmethod
    def is_preflight(request: Request) -> bool:
        return (
            request.method == "OPTIONS"
            and "Origin" in request.headers
            and "Access-Control-Request-Method" in request.headers
        )

    def preflight(self, request: Request) -> Response:
        """204 with what the browser may send, or 403 problem+json for an origin not on the list."""
        origin = request.headers["Origin"]
        if not self.allows(origin):
            raise ProblemError(403, "Forbidden", f"origin {origin[:100]!r} may not call this API")
        asked = [
            h.strip().lower() for h in request.headers.get("Access-Control-Request-Headers", "").split(",")
        ]
        response = Response(status=204)
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        granted = [h for h in asked if h in ALLOWED_HEADERS]
        if granted:
            response.headers["Access-Control-Allow-Headers"] = ", ".join(granted)
        response.headers["Access-Control-Max-Age"] = str(self.max_age)
        response.vary.update(("Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"))
        return response

    def decorate(self, request: Request, response: Response) -> None:
        origin = request.headers.get("Origin")
        if origin and self.allows(origin) and "Access-Control-Allow-Origin" not in response.headers:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        if self.origins:
            response.vary.add("Origin")


def secure(response: Response, *, https: bool, hsts_seconds: int) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if https and hsts_seconds:
        response.headers["Strict-Transport-Security"] = f"max-age={hsts_seconds}; includeSubDomains"


class Forwarding:
    """What the proxies in front (``trusted`` of them: the ALB is one) say about the client.

    ``X-Forwarded-For`` is only believed as far as the trusted proxies appended to it: anything
    further left was written by the client and could be anything.
    """

    def __init__(self, trusted: int) -> None:
        self.trusted = trusted

    @staticmethod
    def _list(request: Request, name: str) -> list[str]:
        values = ",".join(request.headers.getlist(name))
        return [v.strip() for v in values.split(",") if v.strip()]

    def client_ip(self, request: Request) -> str:
        chain = self._list(request, "X-Forwarded-For")
        if self.trusted and len(chain) >= self.trusted:
            return chain[-self.trusted]
        return request.remote_addr or "unknown"

    def is_https(self, request: Request) -> bool:
        if self.trusted:
            proto = self._list(request, "X-Forwarded-Proto")
            if proto:
                return proto[-1].lower() == "https"
        return request.scheme == "https"

    def headers(self, request: Request, prefix: str) -> dict[str, str]:
        """The ``X-Forwarded-*`` headers the upstream gets (the caller's own are dropped)."""
        chain = [*self._list(request, "X-Forwarded-For")[-self.trusted :], request.remote_addr or "unknown"]
        return {
            "X-Forwarded-For": ", ".join(chain if self.trusted else chain[-1:]),
            "X-Forwarded-Proto": "https" if self.is_https(request) else "http",
            "X-Forwarded-Host": request.host,
            "X-Forwarded-Prefix": prefix,
        }
