"""``FLOTILLA_DISCOVERY*`` settings, and the resolver and registration they choose."""

from __future__ import annotations

import socket
from typing import Any, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from flotilla.config.errors import ConfigError
from flotilla.config.settings import PlatformSettings, build_settings
from flotilla.discovery.base import Resolver
from flotilla.discovery.cloudmap import Choice, CloudMapResolver
from flotilla.discovery.kubernetes import KubernetesResolver
from flotilla.discovery.registration import CloudMapRegistration
from flotilla.discovery.static import StaticResolver


class DiscoverySettings(BaseSettings):
    """How this service finds the others (and, optionally, registers itself)."""

    model_config = SettingsConfigDict(
        env_prefix="FLOTILLA_DISCOVERY_", extra="ignore", frozen=True, populate_by_name=True
    )

    mode: Literal["static", "kubernetes", "cloudmap"] = Field(
        default="static", validation_alias="FLOTILLA_DISCOVERY", description="Which resolver to use."
    )
    static: dict[str, str] = Field(
        default_factory=dict, description='static: {"catalog": "http://127.0.0.1:8101"}.'
    )
    namespace: str = Field(
        default="default",
        validation_alias=AliasChoices("FLOTILLA_DISCOVERY_NAMESPACE", "K8S_NAMESPACE_NAME"),
        description="kubernetes: the namespace of the called Services (default: our own).",
    )
    port: int = Field(default=80, ge=1, le=65535, description="kubernetes: the Services' port.")
    cluster_domain: str = "cluster.local"
    cloudmap_namespace: str | None = Field(default=None, description="cloudmap: the namespace name.")
    ttl_seconds: float = Field(default=10.0, gt=0, description="cloudmap: how long an answer is reused.")
    choice: Choice = Field(default="round-robin", description="cloudmap: how an instance is picked.")
    self_register: bool = Field(
        default=False,
        validation_alias="FLOTILLA_DISCOVERY_REGISTER",
        description="Register this instance in Cloud Map at start.",
    )
    register_create_missing: bool = Field(
        default=False, description="Create the namespace and service if absent."
    )
    register_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("FLOTILLA_DISCOVERY_REGISTER_ADDRESS", "K8S_POD_IP"),
        description="Address to register (default: this host's address).",
    )
    instance_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("FLOTILLA_DISCOVERY_INSTANCE_ID", "K8S_POD_NAME"),
        description="Instance id to register (default: the host name).",
    )


def load_discovery_settings() -> DiscoverySettings:
    """Settings from the environment, or a one-line ``ConfigError``."""
    # pydantic names a field by its alias when it has one, and our aliases are variable names
    return build_settings(
        DiscoverySettings, lambda name: name if name.isupper() else f"FLOTILLA_DISCOVERY_{name}".upper()
    )


def resolver_from_settings(
    settings: DiscoverySettings | None = None,
    platform: PlatformSettings | None = None,
    *,
    aws_client: Any = None,
) -> Resolver:
    """The resolver ``FLOTILLA_DISCOVERY`` names, built from its settings."""
    settings = settings or load_discovery_settings()
    if settings.mode == "static":
        return StaticResolver(settings.static)
    if settings.mode == "kubernetes":
        return KubernetesResolver(
            settings.namespace, port=settings.port, cluster_domain=settings.cluster_domain
        )
    if not settings.cloudmap_namespace:
        raise ConfigError(
            "FLOTILLA_DISCOVERY_CLOUDMAP_NAMESPACE: is required when FLOTILLA_DISCOVERY=cloudmap"
        )
    return CloudMapResolver(
        aws_client or _servicediscovery(platform),
        settings.cloudmap_namespace,
        ttl_seconds=settings.ttl_seconds,
        choice=settings.choice,
        default_port=settings.port,
    )


def registration_from_settings(
    service: str,
    port: int,
    settings: DiscoverySettings | None = None,
    platform: PlatformSettings | None = None,
    *,
    aws_client: Any = None,
) -> CloudMapRegistration | None:
    """This instance's Cloud Map registration, or None when ``FLOTILLA_DISCOVERY_REGISTER`` is off."""
    settings = settings or load_discovery_settings()
    if not settings.self_register:
        return None
    if not settings.cloudmap_namespace:
        raise ConfigError("FLOTILLA_DISCOVERY_CLOUDMAP_NAMESPACE: is required when registering in Cloud Map")
    return CloudMapRegistration(
        aws_client or _servicediscovery(platform),
        namespace=settings.cloudmap_namespace,
        service=service,
        instance_id=settings.instance_id or socket.gethostname(),
        address=settings.register_address or _own_address(),
        port=port,
        create_missing=settings.register_create_missing,
    )


def _servicediscovery(platform: PlatformSettings | None) -> Any:
    from flotilla.aws import client
    from flotilla.config.settings import load_platform

    return client("servicediscovery", platform or load_platform())


def _own_address() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
