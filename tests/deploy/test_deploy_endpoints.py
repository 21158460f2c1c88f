"""Per-pod endpoints: the Envoy mesh and Cloud Map see every pod, not one ClusterIP.

STRICT_DNS on `<svc>.<ns>.svc.cluster.local` resolves to the ClusterIP: one host, so outlier detection could only
eject the whole service and circuit breakers would count connections to kube-proxy. On `<svc>-pods` (a headless
Service) it resolves to each ready pod's IP, so each pod is a host with its own ejection and counters.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from deploy_support import CELLS, Renderer, find, one

NAMESPACE_SUFFIX = ".flotilla.svc.cluster.local"


def _upstream_clusters(bootstrap: str) -> list[dict[str, Any]]:
    clusters = yaml.safe_load(bootstrap)["static_resources"]["clusters"]
    return [c for c in clusters if c["name"] != "local_app"]


def _endpoint(cluster: dict[str, Any]) -> tuple[str, int]:
    (locality,) = cluster["load_assignment"]["endpoints"]
    (lb,) = locality["lb_endpoints"]
    address = lb["endpoint"]["address"]["socket_address"]
    return address["address"], address["port_value"]


def _container_port(deployment: dict[str, Any], name: str) -> int:
    spec = deployment["spec"]["template"]["spec"]
    ports = {
        p["name"]: p["containerPort"]
        for c in [*spec.get("initContainers", []), *spec["containers"]]
        for p in c.get("ports", [])
    }
    return ports[name]


def test_every_envoy_upstream_is_every_pod_of_the_callee(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla:eks-envoy"])
    checked = set()
    for config in find(docs, "ConfigMap"):
        if not config["metadata"]["name"].endswith("-envoy"):
            continue
        caller = config["metadata"]["name"].removesuffix("-envoy")
        for cluster in _upstream_clusters(config["data"]["envoy.yaml"]):
            callee = cluster["name"]
            host, port = _endpoint(cluster)
            assert cluster["type"] == "STRICT_DNS"
            assert host == f"{callee}-pods{NAMESPACE_SUFFIX}", f"{caller} -> {callee}: {host} is not per pod"
            headless = one(docs, "Service", f"{callee}-pods")
            assert headless["spec"]["clusterIP"] == "None"
            assert headless["spec"].get("publishNotReadyAddresses") is False, "unready pods stay out of DNS"
            deployment = one(docs, "Deployment", callee)
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            assert all(labels.get(k) == v for k, v in headless["spec"]["selector"].items()), callee
            (service_port,) = headless["spec"]["ports"]
            assert _container_port(deployment, service_port["targetPort"]) == port == service_port["port"], (
                f"{caller} dials {callee}'s pods on {port}: the port their Envoy listens on"
            )
            checked.add((caller, callee))
    assert checked == {("gateway", "catalog"), ("gateway", "cart"), ("cart", "catalog")}


def test_outlier_detection_and_breakers_sit_on_the_per_pod_cluster(renderer: Renderer) -> None:
    bootstrap = one(renderer.render(CELLS["flotilla-service:everything-envoy"]), "ConfigMap", "catalog-envoy")
    (cart,) = [c for c in _upstream_clusters(bootstrap["data"]["envoy.yaml"]) if c["name"] == "cart"]
    assert _endpoint(cart) == (f"cart-pods{NAMESPACE_SUFFIX}", 15000)
    assert "outlier_detection" in cart and "circuit_breakers" in cart
    assert cart["dns_refresh_rate"] == "5s", "pods that come and go are seen within seconds"


@pytest.mark.parametrize("provider", ["none", "istio", "lattice"])
def test_meshes_that_find_pods_themselves_get_no_headless_service(renderer: Renderer, provider: str) -> None:
    """Istio and Lattice read EndpointSlices themselves; without a mesh the ClusterIP is the design."""
    docs = renderer.render(CELLS[f"flotilla:eks-{provider}" if provider != "none" else "flotilla:eks"])
    assert not [s for s in find(docs, "Service") if s["spec"].get("clusterIP") == "None"]
