"""The per-upstream call policy (timeouts, retries, circuit breaker, bulkhead), read from settings.

One contract serves two readers: this client enforces it in process, and the Helm chart renders the
same values into mesh resources (Istio/Envoy/VPC Lattice). So the keys are camelCase like the chart's
values, the JSON schema is exported to ``docs/upstream-policy.schema.json``, and unknown keys are
rejected rather than ignored: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_camel
from pydantic_settings import BaseSettings, SettingsConfigDict

from flotilla.config.settings import build_settings

RetryCondition = Literal["connect-failure", "429", "502", "503", "504"]

DEFAULT_RETRY_ON: tuple[RetryCondition, ...] = ("connect-failure", "429", "502", "503", "504")


class _Policy(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class RetryBudgetPolicy(_Policy):
    """Retries stay under ``ratio`` of the calls made in the last ``windowSeconds`` (plus a floor).

    Without a budget, an outage multiplies load by the attempt count exactly when the upstream can
    least take it.
    """

    ratio: float = Field(
        default=0.2, ge=0.0, le=1.0, description="Share of recent calls that may be retried."
    )
    min_retries: int = Field(
        default=3, ge=0, description="Retries always allowed per window, so a quiet client can still retry."
    )
    window_seconds: float = Field(default=10.0, gt=0, description="How far back 'recent' reaches.")


class RetryPolicy(_Policy):
    """When to try again. Only idempotent methods, or requests with an ``Idempotency-Key``, retry."""

    attempts: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries after the first try (Istio's meaning), so 2 = at most 3 tries.",
    )
    per_try_timeout_seconds: float | None = Field(
        default=None, gt=0, description="Timeout of each try; unset means the whole call's timeout."
    )
    retry_on: tuple[RetryCondition, ...] = Field(
        default=DEFAULT_RETRY_ON,
        description="Conditions that allow a retry: a failed connect or these statuses.",
    )
    backoff_base_seconds: float = Field(
        default=0.05, gt=0, description="First backoff ceiling; it doubles per retry (full jitter below it)."
    )
    backoff_max_seconds: float = Field(default=2.0, gt=0, description="Largest backoff ceiling.")
    max_retry_after_seconds: float = Field(
        default=10.0,
        ge=0,
        description="A Retry-After longer than this is not waited for; the answer is returned.",
    )
    budget: RetryBudgetPolicy = Field(default_factory=RetryBudgetPolicy)


class CircuitBreakerPolicy(_Policy):
    """When to stop calling an upstream for a while, and how to test whether it is back."""

    consecutive_failures: int = Field(default=5, ge=1, description="Failures in a row that open the circuit.")
    failure_rate_threshold: float = Field(
        default=0.5, gt=0.0, le=1.0, description="Failure share in the window that opens the circuit."
    )
    window_seconds: float = Field(default=30.0, gt=0, description="Window the failure rate is measured over.")
    minimum_calls: int = Field(default=10, ge=1, description="Calls in the window before the rate is judged.")
    open_seconds: float = Field(
        default=30.0, gt=0, description="How long the circuit stays open before trials."
    )
    half_open_max_calls: int = Field(
        default=2, ge=1, description="Trial calls let through when half-open; all must succeed to close."
    )
    max_connections: int = Field(
        default=100, ge=1, description="Connection pool size per upstream (client and mesh)."
    )
    max_pending_requests: int = Field(
        default=100, ge=1, description="Mesh only: requests queued for a connection."
    )


class OutlierDetectionPolicy(_Policy):
    """Mesh only: ejects single bad hosts from the load-balancing pool (the client sees one name)."""

    consecutive_5xx_errors: int = Field(default=5, ge=1, alias="consecutive5xxErrors")
    interval_seconds: float = Field(default=10.0, gt=0)
    base_ejection_seconds: float = Field(default=30.0, gt=0)
    max_ejection_percent: int = Field(default=50, ge=0, le=100)


class BulkheadPolicy(_Policy):
    """How many calls to this upstream may be in flight at once from one process."""

    max_concurrent: int = Field(
        default=20, ge=1, description="Concurrent calls; one more is rejected at once."
    )


class UpstreamPolicy(_Policy):
    """Everything about calling one upstream; every key is optional."""

    model_config = ConfigDict(title="UpstreamPolicy")

    timeout_seconds: float = Field(
        default=5.0, gt=0, description="Whole call, retries and backoff included (Istio's route timeout)."
    )
    retries: RetryPolicy = Field(default_factory=RetryPolicy)
    circuit_breaker: CircuitBreakerPolicy = Field(default_factory=CircuitBreakerPolicy)
    outlier_detection: OutlierDetectionPolicy = Field(default_factory=OutlierDetectionPolicy)
    bulkhead: BulkheadPolicy = Field(default_factory=BulkheadPolicy)


UpstreamPolicies = dict[str, UpstreamPolicy]


class ClientSettings(BaseSettings):
    """``FLOTILLA_UPSTREAMS`` (JSON, keyed by logical name) and ``FLOTILLA_CLIENT_RETRIES``.

    ``client_retries`` is false when a mesh retries: two layers each retrying 3 times would send
    9 requests for one call.
    """

    model_config = SettingsConfigDict(env_prefix="FLOTILLA_", extra="ignore", frozen=True)

    upstreams: UpstreamPolicies = Field(default_factory=dict)
    client_retries: bool = True

    def policy(self, upstream: str) -> UpstreamPolicy:
        """The upstream's declared policy, or the defaults for one not declared."""
        return self.upstreams.get(upstream) or _DEFAULT_POLICY


_DEFAULT_POLICY = UpstreamPolicy()


def load_client_settings() -> ClientSettings:
    """Client settings from the environment, or a one-line ``ConfigError`` naming the variable."""
    return build_settings(ClientSettings, lambda field: f"FLOTILLA_{field}".upper())


def upstreams_schema() -> dict[str, Any]:
    """JSON schema of ``FLOTILLA_UPSTREAMS`` (the chart's ``upstreams`` value): name -> policy."""
    schema = TypeAdapter(UpstreamPolicies).json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Flotilla upstream policies",
        "description": (
            "FLOTILLA_UPSTREAMS: per logical upstream name, the call policy. Read by flotilla.http "
            "and rendered into mesh resources by the service chart. Generated from "
            "flotilla/http/policy.py; do not edit by hand."
        ),
        **schema,
    }


def render_schema() -> str:
    """The schema file's exact text, so a test can tell whether the checked-in copy is current."""
    return json.dumps(upstreams_schema(), indent=2, sort_keys=True) + "\n"
