"""RFC 9457 problem details for every error response, and the exception services raise to send one."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from opentelemetry import trace
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from flotilla.context import current_request_id

log = logging.getLogger("flotilla.errors")

PROBLEM_JSON = "application/problem+json"
VALIDATION_TYPE = "urn:flotilla:problem:validation-error"


class ProblemError(Exception):
    """Raise from a view to answer with a problem document; extra keyword arguments become members."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.headers = headers or {}
        self.extensions = extensions


def problem_response(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    type: str = "about:blank",
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    body: dict[str, Any] = {"type": type, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body["instance"] = request.path if request else None
    body["request_id"] = current_request_id()
    body |= extensions
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def validation_problem(err: ValidationError, location: str | None = None) -> Response:
    """422 listing each field that failed: where it is, what is wrong, and pydantic's error type."""
    errors = []
    for item in err.errors(include_url=False, include_input=False, include_context=False):
        parts = [str(p) for p in item["loc"]]
        if location:
            parts.insert(0, location)
        errors.append(
            {"field": ".".join(parts) or location or "", "message": item["msg"], "type": item["type"]}
        )
    return problem_response(
        422,
        "Request validation failed",
        f"{len(errors)} invalid field(s)",
        type=VALIDATION_TYPE,
        errors=errors,
    )


class Problems:
    """Flask extension: HTTP errors, ``ProblemError`` and crashes all become problem+json.

    A crash answers a bare 500 (no exception text, no stack) and is logged with its trace id, which
    the log formatter adds, so the response's request_id leads to the log line.
    """

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions["flotilla.errors"] = self
        app.register_error_handler(ProblemError, self._problem)
        app.register_error_handler(HTTPException, self._http)
        app.register_error_handler(ValidationError, validation_problem)
        app.register_error_handler(Exception, self._crash)

    def _problem(self, err: ProblemError) -> Response:
        return problem_response(
            err.status, err.title, err.detail, type=err.type, headers=err.headers, **err.extensions
        )

    def _http(self, err: HTTPException) -> Response:
        status = err.code or 500
        if status >= 500:
            log.error("server error %s on %s %s", status, request.method, request.path)
        headers = {}
        if status == 405 and err.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(sorted(err.valid_methods))  # type: ignore[attr-defined]
        retry_after = getattr(err, "retry_after", None)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return problem_response(status, err.name, err.description, headers=headers)

    def _crash(self, err: Exception) -> Response:
        trace.get_current_span().record_exception(err)
        log.error("unhandled %s on %s %s", type(err).__name__, request.method, request.path, exc_info=err)
        return problem_response(500, "Internal Server Error", "The server could not complete the request.")
