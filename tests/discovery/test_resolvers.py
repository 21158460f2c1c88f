"""Static and Kubernetes resolvers, and how settings choose one."""

from __future__ import annotations

import pytest

from flotilla.config import ConfigError
from flotilla.discovery import (
    CloudMapResolver,
    KubernetesResolver,
    StaticResolver,
    UnknownService,
    load_discovery_settings,
    resolver_from_settings,
)


def test_static_resolver_maps_names_and_says_how_to_fix_a_missing_one():
    resolver = StaticResolver({"catalog": "http://127.0.0.1:8101/"})
    assert resolver.resolve("catalog") == "http://127.0.0.1:8101"
    with pytest.raises(UnknownService, match="FLOTILLA_DISCOVERY_STATIC"):
        resolver.resolve("orders")


def test_kubernetes_resolver_builds_the_cluster_dns_name():
    resolver = KubernetesResolver("shop", ports={"catalog": 8080})
    assert resolver.resolve("orders") == "http://orders.shop.svc.cluster.local:80"
    assert resolver.resolve("catalog") == "http://catalog.shop.svc.cluster.local:8080"


def test_settings_choose_static_by_default(monkeypatch):
    monkeypatch.setenv("FLOTILLA_DISCOVERY_STATIC", '{"catalog": "http://127.0.0.1:8101"}')
    resolver = resolver_from_settings()
    assert isinstance(resolver, StaticResolver)
    assert resolver.resolve("catalog") == "http://127.0.0.1:8101"


def test_kubernetes_mode_takes_the_pod_namespace_from_the_downward_api(monkeypatch):
    monkeypatch.setenv("FLOTILLA_DISCOVERY", "kubernetes")
    monkeypatch.setenv("K8S_NAMESPACE_NAME", "shop")
    monkeypatch.setenv("FLOTILLA_DISCOVERY_PORT", "8080")
    resolver = resolver_from_settings()
    assert isinstance(resolver, KubernetesResolver)
    assert resolver.resolve("orders") == "http://orders.shop.svc.cluster.local:8080"


def test_cloudmap_mode_needs_a_namespace(monkeypatch):
    monkeypatch.setenv("FLOTILLA_DISCOVERY", "cloudmap")
    with pytest.raises(ConfigError, match="FLOTILLA_DISCOVERY_CLOUDMAP_NAMESPACE"):
        resolver_from_settings()
    monkeypatch.setenv("FLOTILLA_DISCOVERY_CLOUDMAP_NAMESPACE", "flotilla.local")
    assert isinstance(resolver_from_settings(aws_client=object()), CloudMapResolver)


def test_a_bad_mode_is_a_one_line_config_error(monkeypatch):
    monkeypatch.setenv("FLOTILLA_DISCOVERY", "consul")
    with pytest.raises(ConfigError, match=r"^invalid configuration: FLOTILLA_DISCOVERY: ") as caught:
        load_discovery_settings()
    assert "\n" not in str(caught.value)
