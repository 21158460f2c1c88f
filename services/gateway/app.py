"""HTTP surface of the gateway: the proxy route, CORS and security headers, the aggregated API doc.

Per request, in order: a CORS preflight is answered at once; the route is looked up (404); the
caller is authenticated (401) and checked against the route's rule for the method (401/403); the
client's bucket for the route is charged (429), and an API key's daily quota; then the request is
forwarded with the caller's identity signed into ``X-Flotilla-*`` headers, good for that upstream,
method and path only (``flotilla.principal``).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, g, jsonify, request

from flotilla import create_app as create_chassis_app
from flotilla.auth import JwksCache, TokenPolicy, TokenVerifier
from flotilla.clock import SYSTEM_CLOCK, Clock
from flotilla.config import ConfigError, PlatformSettings, load_platform, load_settings
from flotilla.errors import ProblemError
from flotilla.health import Health
from flotilla.http import ServiceClient
from flotilla.principal import Principal, sign
from services.gateway.auth import ANONYMOUS, Authenticator, Caller, authorize
from services.gateway.edge import Cors, Forwarding, secure
from services.gateway.openapi import Aggregator
from services.gateway.proxy import forward, relocate, upstream_path, upstream_target
from services.gateway.settings import RouteSpec, Settings
from services.gateway.throttle import Throttle

log = logging.getLogger(__name__)

# Where an issuer publishes its keys when GATEWAY_JWKS_URL doesn't say (Cognito's, Auth0's and the dev
# issuer's convention).
JWKS_PATH = "/.well-known/jwks.json"

PROXY_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def token_verifier(settings: Settings, clock: Clock) -> TokenVerifier | None:
    """The JWT verifier the settings ask for (the local stack points them at its dev issuer)."""
    issuer, client_ids = settings.jwt_issuer, settings.jwt_client_ids
    if issuer is None:
        log.warning("GATEWAY_JWT_ISSUER is not set: bearer tokens will be refused")
        return None
    jwks = JwksCache(
        settings.jwks_url or issuer.rstrip("/") + JWKS_PATH,
        ttl_seconds=settings.jwks_ttl_seconds,
        min_refresh_seconds=settings.jwks_min_refresh_seconds,
        clock=clock,
    )
    policy = TokenPolicy(
        issuer=issuer,
        client_ids=frozenset(client_ids),
        audiences=frozenset(settings.jwt_audiences),
        leeway_seconds=settings.jwt_leeway_seconds,
    )
    return TokenVerifier(policy, jwks, clock=clock)


def principal_secret(platform: PlatformSettings) -> str | None:
    """The key callers are signed with. Required outside ``local``; a local gateway without one still
    routes (health checks, public reads) but forwards no identity, and says so once."""
    if platform.principal_secret is not None:
        return platform.principal_secret.get_secret_value()
    if platform.env != "local":
        raise ConfigError(
            "FLOTILLA_PRINCIPAL_SECRET: is required by the gateway (services verify callers with it)"
        )
    log.warning("FLOTILLA_PRINCIPAL_SECRET is not set: callers are not forwarded to services")
    return None


def identify(
    authenticator: Authenticator, throttle: Throttle, route_key: str, route: RouteSpec, client_ip: str
) -> Caller:
    """The caller, allowed on this route, or the 401/403 problem.

    A failed sign-in costs what an anonymous request does, so guessing tokens or keys is throttled per
    client address like any anonymous traffic (429 once the bucket is empty). OPTIONS reads nothing:
    it goes through anonymous and unsigned, and the service answers with the methods its resource
    takes (the gateway can't know them).
    """
    if request.method == "OPTIONS":
        return ANONYMOUS
    try:
        caller = authenticator.authenticate(request.headers)
    except ProblemError:
        throttle.admit(ANONYMOUS, route_key, route, client_ip)
        raise
    authorize(caller, route.rule_for(request.method))
    return caller


def create_app(
    settings: Settings | None = None,
    *,
    platform: PlatformSettings | None = None,
    client: ServiceClient | None = None,
    clock: Clock | None = None,
) -> Any:
    """The gateway app. ``client`` and ``clock`` are for tests: a client pointed at test upstreams,
    a manual clock that freezes token buckets and key caches."""
    settings = settings or load_settings(Settings, service="gateway")
    platform = platform or load_platform()
    secret = principal_secret(platform)
    app = create_chassis_app("gateway", settings, platform=platform, title="Store API gateway")
    client = client or ServiceClient()
    client.init_app(app)
    verifier = token_verifier(settings, clock or SYSTEM_CLOCK)
    authenticator = Authenticator(verifier, settings.api_keys)
    throttle = Throttle.from_settings(settings, clock)
    cors = Cors(settings.cors_origins, settings.cors_max_age_seconds)
    aggregator = Aggregator(
        client,
        settings.routes,
        title="Store API",
        version=platform.service_version,
        cache_seconds=settings.openapi_cache_seconds,
        clock=clock or SYSTEM_CLOCK,
    )
    checks = Health.of(app)
    if verifier is not None:
        checks.add_check("jwks", verifier.jwks.check, critical=False)
    if throttle.redis is not None:
        checks.add_check("redis", throttle.redis.ping, critical=False)

    forwarding = Forwarding(settings.trusted_proxies)

    @app.before_request
    def preflight() -> Response | None:
        if Cors.is_preflight(request):
            return cors.preflight(request)
        return None

    @app.after_request
    def edge(response: Response) -> Response:
        for name, value in g.get("rate_headers", {}).items():
            response.headers.setdefault(name, value)
        cors.decorate(request, response)
        secure(response, https=forwarding.is_https(request), hsts_seconds=settings.hsts_seconds)
        return response

    def route_for(version: str, service: str) -> RouteSpec:
        services = settings.routes.get(version)
        if services is None:
            raise ProblemError(404, "Not Found", f"no API version {version[:32]!r}")
        route = services.get(service)
        if route is None:
            raise ProblemError(404, "Not Found", f"no service {service[:64]!r} in API {version}")
        return route

    def proxy(version: str, service: str, rest: str = "") -> Response:
        route = route_for(version, service)
        route_key = f"{version}/{service}"
        client_ip = forwarding.client_ip(request)
        caller = identify(authenticator, throttle, route_key, route, client_ip)
        g.rate_headers = throttle.admit(caller, route_key, route, client_ip)
        extra = forwarding.headers(request, f"/api/{route_key}")
        target = upstream_target(upstream_path(route.prefix, rest), request)
        if secret and not caller.anonymous:
            # Signed for this one request, as the upstream receives it.
            principal = Principal(caller.subject, caller.scopes, caller.client)
            extra |= sign(principal, secret, audience=route.upstream, method=request.method, path=target)
        answer = forward(client, route.upstream, request, target, extra)
        return relocate(answer, route.prefix, f"/api/{route_key}")

    app.add_url_rule("/api/<version>/<service>", "gateway_proxy_root", proxy, methods=PROXY_METHODS)
    app.add_url_rule("/api/<version>/<service>/<path:rest>", "gateway_proxy", proxy, methods=PROXY_METHODS)
    app.view_functions["flotilla_openapi"] = lambda: jsonify(aggregator.document())
    return app
