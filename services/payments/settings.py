"""Settings of the payments service (``PAYMENTS_*``): its database, the simulated provider's timing
and faults, and how idempotency keys are held."""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from flotilla.config import ServiceSettings
from flotilla.db import DatabaseSettings


class Settings(ServiceSettings, DatabaseSettings, env_prefix="PAYMENTS_"):
    slow_card_seconds: float = Field(
        10.0,
        ge=0,
        le=25,
        description="How long the slow test card takes to answer (below gunicorn's timeout).",
    )
    fault_latency_ms: int = Field(
        0, ge=0, le=20_000, description="Added to every provider call (authorize, capture, void)."
    )
    fault_error_rate: float = Field(
        0.0, ge=0, le=1, description="Share of provider calls that fail with 503 before any effect."
    )
    fault_seed: int | None = Field(
        None, description="Seed of the fault draws (each worker starts the same sequence); unset: random."
    )
    idempotency_wait_seconds: float = Field(
        5.0,
        ge=0,
        le=30,
        description="How long a request waits for another one holding its Idempotency-Key before a 409.",
    )
    idempotency_lease_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="A request holding a key this long is taken to have died; a retry takes the key over.",
    )
    fingerprint_secret: SecretStr | None = Field(
        None,
        description="HMAC key of request fingerprints (they cover the card number); "
        "unset: derived from FLOTILLA_PRINCIPAL_SECRET.",
    )

    @field_validator("idempotency_lease_seconds")
    @classmethod
    def _lease_outlives_the_provider(cls, value: float, info: ValidationInfo) -> float:
        # A lease shorter than the slowest provider answer would let a retry take the key over while
        # the first request is still working on it.
        slow, latency_ms = info.data.get("slow_card_seconds"), info.data.get("fault_latency_ms")
        if slow is None or latency_ms is None:
            return value  # those failed their own checks, which are reported instead
        slowest = slow + latency_ms / 1000
        if value <= slowest:
            raise ValueError(
                f"must exceed the slowest provider answer, slow card + fault latency ({slowest:g} s)"
            )
        return value
