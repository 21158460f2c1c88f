"""The errors half of the OpenAPI document: what a client, a fuzzer or a code generator must expect.

flask-openapi3 documents the success responses a view declares and a 422 (as ``application/json``,
and as an array, which it is not). Every error the chassis sends is ``application/problem+json``, and
several come from the chassis rather than the view: a malformed JSON body (400), a missing or
invalid gateway signature (401, 403), an unknown resource named in the path (404), a body over the
cap or not JSON (413, 415). ``document_errors`` writes those into the document, turns each
error response a view declares (``responses={409: None}``) into a problem, and drops what
openapi-spec-validator refuses (``securitySchemes: null``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.routing import Map

from flotilla.errors import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; a problem may carry more members (e.g. current_version).",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": ["string", "null"]},
        "request_id": {"type": ["string", "null"]},
    },
    "additionalProperties": True,
}

# The signed caller headers the gateway adds (flotilla.principal): a service can't be called without them.
PRINCIPAL_SCHEME = "gatewayPrincipal"
PRINCIPAL_SCHEME_BODY: dict[str, Any] = {
    "type": "apiKey",
    "in": "header",
    "name": "X-Flotilla-Signature",
    "description": "The caller as the gateway authenticated it, in HMAC-signed X-Flotilla-* headers.",
}

DESCRIPTIONS = {
    400: "Bad Request: malformed JSON or parameters that contradict each other",
    401: "Unauthorized: no valid gateway signature",
    403: "Forbidden: the caller lacks the scope",
    404: "Not Found",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Request validation failed",
}

_PATH_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_SKIPPED_METHODS = frozenset({"HEAD", "OPTIONS"})
VALIDATED = frozenset({"path", "query", "body", "header", "cookie", "form"})  # flask-openapi3's parameters


def openapi_path(rule: str) -> str:
    """Werkzeug's ``/products/<sku>`` (or ``<path:rest>``) as OpenAPI's ``/products/{sku}``."""
    return _PATH_VARIABLE.sub(r"{\1}", rule)


def document_errors(
    spec: dict[str, Any],
    url_map: Map,
    view_of: Callable[[str], Any],
    *,
    parameters_of: Callable[[Any], Iterable[str]],
    guarded: Callable[[Any], bool],
    validation_schema: str = "ValidationProblem",
) -> dict[str, Any]:
    """``spec`` with every operation's error responses documented as problem+json (changed in place)."""
    components = spec.setdefault("components", {})
    if components.get("securitySchemes") is None:
        components.pop("securitySchemes", None)
    schemas = components.setdefault("schemas", {})
    schemas.setdefault("Problem", PROBLEM_SCHEMA)
    problem = {"$ref": "#/components/schemas/Problem"}
    # A 422 lists the invalid fields when the parameters failed their schema; a view's own 422 (an
    # unknown product, a full cart) is a plain problem.
    unprocessable = {"anyOf": [{"$ref": f"#/components/schemas/{validation_schema}"}, problem]}
    paths: dict[str, Any] = spec.get("paths", {})
    for rule in url_map.iter_rules():
        item = paths.get(openapi_path(rule.rule))
        if item is None:
            continue
        view = view_of(rule.endpoint)
        is_guarded = guarded(view)
        statuses = set(_chassis_statuses(set(parameters_of(view)), bool(rule.arguments), is_guarded))
        for method in sorted((rule.methods or set()) - _SKIPPED_METHODS):
            operation = item.get(method.lower())
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if 422 not in statuses:
                responses.pop("422", None)  # flask-openapi3 adds it even where nothing is validated
            for status in statuses:
                responses.setdefault(str(status), {"description": DESCRIPTIONS[status]})
            for key, response in responses.items():
                if key.isdigit() and int(key) >= 400:
                    response["content"] = {
                        PROBLEM_JSON: {"schema": unprocessable if key == "422" else problem}
                    }
            responses["default"] = {
                "description": "Any other error (e.g. an upstream failure)",
                "content": {PROBLEM_JSON: {"schema": problem}},
            }
            operation["responses"] = dict(
                sorted(responses.items(), key=lambda kv: (kv[0] == "default", kv[0]))
            )
            if is_guarded:
                operation["security"] = [{PRINCIPAL_SCHEME: []}]
                components.setdefault("securitySchemes", {})[PRINCIPAL_SCHEME] = PRINCIPAL_SCHEME_BODY
    return spec


def _chassis_statuses(parameters: set[str], in_path: bool, guarded: bool) -> Iterable[int]:
    """What the chassis itself may answer before or around the view (``parameters``: its annotated ones)."""
    if parameters & VALIDATED:
        yield 422
    if "body" in parameters:
        yield from (400, 413, 415)
    if guarded:
        yield from (401, 403)
    if in_path:
        yield 404
