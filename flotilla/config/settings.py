"""Platform settings (``FLOTILLA_*``) and the base class for each service's own settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import (
    AliasChoices,
    Field,
    SecretBytes,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from flotilla.config.errors import ConfigError, describe, describe_source_error

log = logging.getLogger(__name__)

S = TypeVar("S", bound=BaseSettings)

MIN_PRINCIPAL_SECRET_LENGTH = 32  # characters, outside FLOTILLA_ENV=local

SECRET_NAME_HINTS = ("password", "secret", "token", "api_key", "private_key", "credentials")


class PlatformSettings(BaseSettings):
    """What every service shares: environment, AWS access, telemetry and serving knobs."""

    model_config = SettingsConfigDict(env_prefix="FLOTILLA_", extra="ignore", frozen=True)

    env: str = Field("local", description="Deployment environment (local, dev, staging, prod).")
    service_version: str = Field("0.0.0-dev", description="Build version, set by the image.")
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    access_log: bool = True
    aws_region: str = Field(
        "us-east-1",
        validation_alias=AliasChoices("FLOTILLA_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
    )
    aws_endpoint_url: str | None = Field(None, description="Endpoint override (the local emulator).")
    ssm_enabled: bool = Field(False, description="Overlay service settings from SSM Parameter Store.")
    ssm_ttl_seconds: float = Field(300.0, ge=0)
    trace_sample_ratio: float = Field(1.0, ge=0.0, le=1.0)
    trace_file: Path = Field(Path(".flotilla/traces.jsonl"), description="Span sink without OTLP.")
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    drain_seconds: float = Field(3.0, ge=0, description="How long /readyz says 503 before stopping.")
    principal_secret: SecretStr | None = Field(
        None, description="Key the gateway signs caller identities with; services verify with it."
    )

    @field_validator("principal_secret")
    @classmethod
    def _a_real_key(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # An empty key signs nothing: anyone could compute the signature. Unset is the honest way
        # to say "no identities" (the gateway then refuses to start outside local).
        if value is None:
            return value
        key = value.get_secret_value()
        if not key.strip():
            raise ValueError("must not be empty (unset it to run without signed identities)")
        # A short key can be guessed offline from one captured request (the MAC is over known
        # fields). Local stacks may use a memorable one; every other environment needs 32 characters.
        env = info.data.get("env", "local")
        if env != "local" and len(key) < MIN_PRINCIPAL_SECRET_LENGTH:
            raise ValueError(
                f"must be at least {MIN_PRINCIPAL_SECRET_LENGTH} characters outside FLOTILLA_ENV=local "
                f"(FLOTILLA_ENV is {env!r})"
            )
        return value


class ServiceSettings(BaseSettings):
    """Base for a service's settings; subclasses pass ``env_prefix="ORDERS_"`` as a class keyword.

    ``SecretStr`` fields are masked by ``flotilla config`` and redacted from logs.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)


def load_platform() -> PlatformSettings:
    """Platform settings from the environment, or ``ConfigError`` naming the bad variable."""
    return _build(PlatformSettings, {}, {})


def load_settings(
    cls: type[S],
    service: str,
    platform: PlatformSettings | None = None,
    parameter_store: Any = None,
) -> S:
    """Build ``cls`` from the environment, overlaid by ``/flotilla/<env>/<service>/*`` in SSM.

    SSM wins over the environment when enabled: operators change a value there without a redeploy,
    and the chart's environment only carries defaults. Unknown SSM names are logged, not fatal.
    """
    platform = platform or load_platform()
    overlay: dict[str, str] = {}
    origin: dict[str, str] = {}
    if platform.ssm_enabled:
        prefix = f"/flotilla/{platform.env}/{service}/"
        store = parameter_store or default_parameter_store(platform)
        for name, value in store.get_by_path(prefix).items():
            field = name.replace("-", "_").lower()
            if field in cls.model_fields:
                overlay[field] = value
                origin[field] = prefix + name
            else:
                log.warning("ignoring SSM parameter %s%s: %s has no such setting", prefix, name, service)
    return _build(cls, overlay, origin)


def default_parameter_store(platform: PlatformSettings) -> Any:
    from flotilla.aws import client
    from flotilla.config.ssm import ParameterStore

    return ParameterStore(client("ssm", platform), ttl=platform.ssm_ttl_seconds)


def _build(cls: type[S], overlay: dict[str, str], origin: dict[str, str]) -> S:
    prefix = cls.model_config.get("env_prefix", "") or ""

    def key_for(field: str) -> str:
        return origin.get(field) or f"{prefix}{field}".upper()

    return build_settings(cls, key_for, overlay)


def build_settings(
    cls: type[S], key_for: Callable[[str], str] | None = None, overlay: dict[str, str] | None = None
) -> S:
    """``cls()`` from the environment (plus ``overlay``), or a one-line ``ConfigError``.

    ``key_for`` names a field the way the operator set it; by default the class's env prefix plus
    the field name, upper-cased.
    """
    if key_for is None:
        prefix = cls.model_config.get("env_prefix", "") or ""

        def key_for(field: str) -> str:
            return f"{prefix}{field}".upper()

    try:
        values: dict[str, Any] = dict(overlay or {})
        return cls(**values)
    except ValidationError as err:
        raise describe(err, key_for, frozenset(secret_fields(cls))) from None
    except SettingsError as err:  # a structured value (JSON) that didn't even decode
        raise describe_source_error(err, key_for) from None


def secret_fields(cls: type[BaseSettings]) -> list[str]:
    """Fields typed as secrets, or named like one (a plain ``str`` called ``api_key`` is a secret)."""
    names = []
    for name, info in cls.model_fields.items():
        annotation = str(info.annotation)
        if "Secret" in annotation or any(hint in name.lower() for hint in SECRET_NAME_HINTS):
            names.append(name)
    return names


def secret_values(settings: BaseSettings) -> list[str]:
    """The actual secret strings, so the log redactor can scrub them wherever they turn up."""
    values = []
    for name in secret_fields(type(settings)):
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, SecretBytes):
            value = value.get_secret_value().decode(errors="replace")
        if isinstance(value, str) and len(value) >= 4:
            values.append(value)
    return values


def effective_config(settings: BaseSettings) -> dict[str, Any]:
    """The settings as JSON-ready data, secrets replaced by ``********`` (or null when unset)."""
    masked = set(secret_fields(type(settings)))
    out: dict[str, Any] = {}
    for name, value in settings.model_dump(mode="json").items():
        out[name] = ("********" if value not in (None, "") else value) if name in masked else value
    return out


__all__ = [
    "ConfigError",
    "PlatformSettings",
    "ServiceSettings",
    "build_settings",
    "effective_config",
    "load_platform",
    "load_settings",
    "secret_fields",
    "secret_values",
]
