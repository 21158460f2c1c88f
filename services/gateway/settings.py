"""Settings of the gateway (``GATEWAY_*``): the routing table, who may call, how often, from where.

Structured values (routes, API keys, lists) are JSON in the environment; keys inside them are
camelCase like the upstream policies in ``FLOTILLA_UPSTREAMS``, and unknown keys are a start-up
error rather than a silently ignored typo.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.alias_generators import to_camel

from flotilla.config import ServiceSettings

PUBLIC = "public"  # a route access rule: anyone, no credentials needed
AUTHENTICATED = "authenticated"  # any verified caller, whatever its scopes

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


class RateSpec(_Spec):
    """A token bucket: ``burst`` requests at once, refilled at ``perSecond``."""

    burst: int = Field(ge=1)
    per_second: float = Field(gt=0)


class RouteSpec(_Spec):
    """Where ``/api/<version>/<service>/<rest>`` goes and who may send it.

    ``read`` applies to GET and HEAD, ``write`` to every other method. Each is ``"public"``,
    ``"authenticated"`` or the name of the scope the caller needs.
    """

    upstream: str = Field(min_length=1, description="Logical name, resolved by discovery.")
    prefix: str = Field(
        default="", pattern=r"^(/[^/?#]+)*$", description="Path prefix on the upstream, e.g. /v2."
    )
    read: str = Field(default=AUTHENTICATED, min_length=1)
    write: str = Field(default=AUTHENTICATED, min_length=1)
    rate_limit: RateSpec | None = None

    def rule_for(self, method: str) -> str:
        return self.read if method in ("GET", "HEAD") else self.write


class ApiKeySpec(_Spec):
    """A machine client: the SHA-256 (hex) of its key, never the key itself."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[str] = Field(default_factory=list)
    daily_quota: int | None = Field(default=None, ge=1)
    rate_limit: RateSpec | None = None


STORE_ROUTES: dict[str, dict[str, RouteSpec]] = {
    "v1": {
        "catalog": RouteSpec(upstream="catalog", read=PUBLIC, write="admin"),
        # The cart service serves /cart...; /api/v1/cart/items reaches its /cart/items.
        "cart": RouteSpec(upstream="cart", prefix="/cart", read="cart", write="cart"),
    }
}


class Settings(ServiceSettings, env_prefix="GATEWAY_"):
    routes: dict[str, dict[str, RouteSpec]] = Field(
        default_factory=lambda: dict(STORE_ROUTES),
        description='Version -> service -> route, e.g. {"v1": {"catalog": {"upstream": "catalog"}}}; '
        'a bare string is shorthand for {"upstream": "<string>"}.',
    )
    jwt_issuer: str | None = Field(
        default=None,
        description="Exact iss of accepted tokens; unset means the dev issuer when FLOTILLA_ENV=local.",
    )
    jwks_url: str | None = Field(
        default=None, description="Where the signing keys are; default <issuer>/.well-known/jwks.json."
    )
    jwt_client_ids: list[str] = Field(
        default_factory=list, description="App clients whose access tokens are accepted (client_id)."
    )
    jwt_audiences: list[str] = Field(
        default_factory=list,
        description="App clients whose id tokens are accepted (aud); empty: no id tokens.",
    )
    jwt_leeway_seconds: float = Field(
        default=30.0, ge=0, le=300, description="Clock skew allowed on exp/iat."
    )
    jwks_ttl_seconds: float = Field(default=3600.0, gt=0, description="How long fetched keys are trusted.")
    jwks_min_refresh_seconds: float = Field(
        default=30.0, ge=0, description="Least time between JWKS fetches caused by unknown kids."
    )
    api_keys: dict[str, ApiKeySpec] = Field(
        default_factory=dict, description='Name -> {"sha256": hex, "scopes": [...], "dailyQuota": n}.'
    )
    redis_url: SecretStr | None = Field(
        default=None, description="Shared throttle state; unset: in-process buckets."
    )
    rate_limit: RateSpec = Field(
        default_factory=lambda: RateSpec(burst=100, per_second=20.0),
        description="Default bucket per client per route.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call from a browser."
    )
    cors_max_age_seconds: int = Field(
        default=600, ge=0, description="How long browsers may cache a preflight answer."
    )
    hsts_seconds: int = Field(
        default=31_536_000, ge=0, description="Strict-Transport-Security max-age on https."
    )
    trusted_proxies: int = Field(
        default=0,
        ge=0,
        le=5,
        description="Proxies in front whose X-Forwarded-For/-Proto are believed (1 behind the ALB).",
    )
    openapi_cache_seconds: float = Field(
        default=60.0, ge=0, description="How long upstream API documents are reused."
    )

    @field_validator("routes", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {
            version: {
                name: {"upstream": spec} if isinstance(spec, str) else spec for name, spec in services.items()
            }
            if isinstance(services, dict)
            else services
            for version, services in value.items()
        }

    @field_validator("routes")
    @classmethod
    def _names(cls, value: dict[str, dict[str, RouteSpec]]) -> dict[str, dict[str, RouteSpec]]:
        for version, services in value.items():
            for name in (version, *services):
                if not _NAME.match(name):
                    raise ValueError(f"{name!r} is not a valid version or service name (a-z, 0-9, -)")
        return value
