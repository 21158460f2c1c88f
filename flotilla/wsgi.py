"""Small WSGI plumbing the telemetry middlewares share: the matched route and the response status.

The chassis measures requests in WSGI middleware rather than Flask hooks: a Flask hook costs a
coroutine check and several context-local lookups per call, which at a dozen hooks per request
was most of the chassis' overhead. Flask still knows the route template first, so one URL-value
preprocessor (called directly, no such cost) leaves it in the environ for the middlewares.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, request

ROUTE_KEY = "flotilla.route"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def record_route(app: Flask) -> None:
    """Make ``environ["flotilla.route"]`` hold the matched URL rule (once per app, however many ask)."""
    if app.extensions.get("flotilla.route"):
        return
    app.extensions["flotilla.route"] = True

    def remember(endpoint: str | None, values: dict[str, Any] | None) -> None:
        req = request._get_current_object()  # type: ignore[attr-defined]
        if req.url_rule is not None:
            req.environ[ROUTE_KEY] = req.url_rule.rule

    app.url_value_preprocessor(remember)


class Captured:
    """A ``start_response`` that remembers the status and headers on the way through, and can set
    one more header (replacing any of that name: a proxied answer may already carry it)."""

    __slots__ = ("_start_response", "extra", "headers", "status")

    def __init__(self, start_response: Callable[..., Any], extra: tuple[str, str] | None = None):
        self._start_response = start_response
        self.status = 500
        self.headers: list[tuple[str, str]] = []
        self.extra = extra

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.status = int(status[:3])
        if self.extra is not None:
            name = self.extra[0].lower()
            headers = [h for h in headers if h[0].lower() != name]
            headers.append(self.extra)
        self.headers = headers
        return self._start_response(status, headers, exc_info)

    @property
    def length(self) -> int:
        """Content-Length of the answer (0 when streamed); looked up only by whoever asks."""
        for name, value in self.headers:
            if name == "Content-Length":
                return int(value)
        return 0


def wrap(app: Flask, middleware: Callable[[WSGIApp], WSGIApp]) -> None:
    app.wsgi_app = middleware(app.wsgi_app)  # type: ignore[method-assign,assignment]
