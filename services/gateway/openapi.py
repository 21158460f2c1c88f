"""The gateway's ``/openapi.json``: every routed service's document, under its public prefix.

Each upstream's ``/openapi.json`` is fetched through ``ServiceClient`` (its breaker and timeouts
apply) and kept for ``GATEWAY_OPENAPI_CACHE_SECONDS``; a failed fetch is retried after a few
seconds. An upstream that cannot be reached is left out, and the document says so in
``x-flotilla-unavailable`` and in its description, rather than the whole document failing.

Paths move under ``/api/<version>/<service>``; component names gain a ``<version>.<service>.``
prefix (and every ``$ref`` follows) so two services' ``Product`` schemas cannot collide; each
operation is tagged ``<version>/<service>`` and states the security the route requires.
"""

from __future__ import annotations

import copy
import logging
import threading
from typing import Any

from flotilla.clock import SYSTEM_CLOCK, Clock
from flotilla.errors import ProblemError
from flotilla.http import ServiceClient
from services.gateway.settings import PUBLIC, RouteSpec

log = logging.getLogger(__name__)

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
FAILURE_RETRY_SECONDS = 5.0
FETCH_TIMEOUT_SECONDS = 2.0


class Aggregator:
    def __init__(
        self,
        client: ServiceClient,
        routes: dict[str, dict[str, RouteSpec]],
        *,
        title: str,
        version: str,
        cache_seconds: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._client = client
        self._routes = routes
        self._title = title
        self._version = version
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict[str, Any] | None, str]] = {}

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "openapi": "3.1.0",
            "info": {"title": self._title, "version": self._version},
            "paths": {},
            "components": {
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                    "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                }
            },
            "tags": [],
        }
        missing: list[dict[str, str]] = []
        for version, services in self._routes.items():
            for name, route in services.items():
                upstream_doc, error = self._fetch(route.upstream)
                if upstream_doc is None:
                    missing.append(
                        {"route": f"/api/{version}/{name}", "upstream": route.upstream, "error": error}
                    )
                    continue
                _merge(doc, upstream_doc, version, name, route)
        if missing:
            doc["x-flotilla-unavailable"] = missing
            routes = ", ".join(m["route"] for m in missing)
            doc["info"]["description"] = f"Not included (upstream unavailable): {routes}."
        return doc

    def _fetch(self, upstream: str) -> tuple[dict[str, Any] | None, str]:
        now = self._clock.monotonic()
        cached = self._cache.get(upstream)
        if cached is not None and now < cached[0]:
            return cached[1], cached[2]
        found: dict[str, Any] | None = None
        error = ""
        try:
            answer = self._client.get(upstream, "/openapi.json", timeout=FETCH_TIMEOUT_SECONDS)
            if answer.status_code != 200:
                error = f"HTTP {answer.status_code}"
            else:
                body = answer.json()
                if isinstance(body, dict) and isinstance(body.get("paths"), dict):
                    found = body
                else:
                    error = "not an OpenAPI document"
        except ProblemError as err:
            error = err.title
        except ValueError:
            error = "not JSON"
        if found is None:
            log.warning("openapi: leaving out %s: %s", upstream, error)
        ttl = self._cache_seconds if found is not None else FAILURE_RETRY_SECONDS
        with self._lock:
            self._cache[upstream] = (now + ttl, found, error)
        return found, error


def _merge(doc: dict[str, Any], upstream: dict[str, Any], version: str, name: str, route: RouteSpec) -> None:
    prefix = f"{version}.{name}."
    tag = f"{version}/{name}"
    doc["tags"].append({"name": tag, "description": upstream.get("info", {}).get("title", name)})
    for path, item in upstream["paths"].items():
        if route.prefix and not (path == route.prefix or path.startswith(route.prefix + "/")):
            continue  # outside the part of the upstream this route exposes
        public = f"/api/{version}/{name}{path[len(route.prefix) :]}"
        moved = _renamed(copy.deepcopy(item), prefix)
        for method in METHODS:
            operation = moved.get(method)
            if not isinstance(operation, dict):
                continue
            operation["tags"] = [tag]
            if "operationId" in operation:
                operation["operationId"] = f"{version}_{name}_{operation['operationId']}"
            rule = route.rule_for(method.upper())
            operation["security"] = [] if rule == PUBLIC else [{"bearer": []}, {"apiKey": []}]
            _add_gateway_errors(operation, public=rule == PUBLIC)
        doc["paths"][public] = moved
    for section, members in upstream.get("components", {}).items():
        if section == "securitySchemes" or not isinstance(members, dict):
            continue
        target = doc["components"].setdefault(section, {})
        for key, value in members.items():
            target[prefix + key] = _renamed(copy.deepcopy(value), prefix)


GATEWAY_ERRORS = {
    401: "Unauthorized: the token or API key was refused",
    403: "Forbidden: the caller lacks the route's scope",
    429: "Too Many Requests: the caller's rate or quota is spent (Retry-After says when to retry)",
}


def _add_gateway_errors(operation: dict[str, Any], *, public: bool) -> None:
    """What the gateway itself answers, as the problem document the upstream documents as its default."""
    responses = operation.setdefault("responses", {})
    default = responses.get("default")
    if not isinstance(default, dict) or "content" not in default:
        return
    for status, description in GATEWAY_ERRORS.items():
        if public and status == 403:
            continue
        responses.setdefault(str(status), {"description": description, "content": default["content"]})


def _renamed(node: Any, prefix: str) -> Any:
    """Point every local ``$ref`` at the prefixed component name."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/components/"):
                section, _, component = value[len("#/components/") :].partition("/")
                node[key] = f"#/components/{section}/{prefix}{component}"
            else:
                _renamed(value, prefix)
    elif isinstance(node, list):
        for item in node:
            _renamed(item, prefix)
    return node
