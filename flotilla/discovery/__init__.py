"""Service discovery: logical names to instance addresses (static, Kubernetes DNS, AWS Cloud Map),
and optional self-registration in Cloud Map. Each resolver works alone; settings choose one::

    from flotilla.discovery import resolver_from_settings

    resolver = resolver_from_settings()  # FLOTILLA_DISCOVERY=static|kubernetes|cloudmap
    resolver.resolve("catalog")          # "http://catalog.shop.svc.cluster.local:80"
"""

from flotilla.discovery.base import DiscoveryError, NoHealthyInstances, Resolver, UnknownService
from flotilla.discovery.cloudmap import CloudMapResolver
from flotilla.discovery.kubernetes import KubernetesResolver
from flotilla.discovery.registration import CloudMapRegistration
from flotilla.discovery.settings import (
    DiscoverySettings,
    load_discovery_settings,
    registration_from_settings,
    resolver_from_settings,
)
from flotilla.discovery.static import StaticResolver

__all__ = [
    "CloudMapRegistration",
    "CloudMapResolver",
    "DiscoveryError",
    "DiscoverySettings",
    "KubernetesResolver",
    "NoHealthyInstances",
    "Resolver",
    "StaticResolver",
    "UnknownService",
    "load_discovery_settings",
    "registration_from_settings",
    "resolver_from_settings",
]
