"""The store (umbrella) chart: exactly the allowed network flows, mesh routes per host, targets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from deploy_support import CELLS, NAMESPACE, STORE_CHART, Cell, HelmError, Renderer, find, one

Doc = dict[str, Any]


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _peer_matches(peer: Doc, labels: dict[str, str], namespace: str) -> bool:
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer and not _matches(
        peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace}
    ):
        return False
    if "namespaceSelector" not in peer and namespace != NAMESPACE:
        return False
    return _matches(peer.get("podSelector", {}), labels)


def _port_ok(rule: Doc, port: int) -> bool:
    return "ports" not in rule or any(p.get("port") == port for p in rule["ports"])


def _allowed(
    policies: list[Doc], direction: str, pod: dict[str, str], peer: dict[str, str], port: int
) -> bool:
    """NetworkPolicy semantics: a pod is isolated once a policy selects it; the rules add up."""
    selecting = [
        p
        for p in policies
        if _matches(p["spec"]["podSelector"], pod) and direction.capitalize() in p["spec"]["policyTypes"]
    ]
    if not selecting:
        return True
    key, peers = ("ingress", "from") if direction == "ingress" else ("egress", "to")
    return any(
        _port_ok(rule, port) and any(_peer_matches(x, peer, NAMESPACE) for x in rule.get(peers, []))
        for p in selecting
        for rule in p["spec"].get(key) or []
    )


def _pods(docs: list[Doc]) -> dict[str, dict[str, str]]:
    return {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in find(docs, "Deployment")
    }


def _can_connect(docs: list[Doc], src: str, dst: str, port: int) -> bool:
    policies = find(docs, "NetworkPolicy")
    pods = _pods(docs)
    return _allowed(policies, "egress", pods[src], pods[dst], port) and _allowed(
        policies, "ingress", pods[dst], pods[src], port
    )


EXPECTED_FLOWS = {("gateway", "catalog"), ("gateway", "cart"), ("cart", "catalog")}


@pytest.mark.parametrize("cell", ["eks", "kind", "eks-envoy"])
def test_network_flows_are_exactly_the_call_graph(renderer: Renderer, cell: str) -> None:
    docs = renderer.render(CELLS[f"flotilla:{cell}"])
    deny = one(docs, "NetworkPolicy", "default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    port = 15000 if cell == "eks-envoy" else 8000
    services = ["gateway", "catalog", "cart"]
    allowed = {(a, b) for a in services for b in services if a != b and _can_connect(docs, a, b, port)}
    assert allowed == EXPECTED_FLOWS
    assert not _can_connect(docs, "gateway", "catalog", 5432), "only the serving port is open"


def test_dev_dependencies_reachable_only_by_their_clients(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla:kind"])
    assert _can_connect(docs, "catalog", "postgres", 5432)
    assert _can_connect(docs, "catalog", "redis", 6379)
    assert not _can_connect(docs, "cart", "postgres", 5432)
    assert _can_connect(docs, "gateway", "redis", 6379), "the gateway's throttle state"
    assert not _can_connect(docs, "cart", "redis", 6379)
    for service in ("gateway", "catalog", "cart"):
        assert _can_connect(docs, service, "moto", 5000)
    assert not find(renderer.render(CELLS["flotilla:eks"]), "Deployment", "postgres")


def test_dev_issuer_is_reached_by_the_gateway_alone(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla:kind"])
    pods = _pods(docs)
    others = [name for name in pods if name != "dev-issuer"]
    assert {"gateway", "catalog", "cart", "postgres", "redis", "moto"} <= set(others)
    assert [name for name in others if _can_connect(docs, name, "dev-issuer", 8090)] == ["gateway"]
    assert not _can_connect(docs, "gateway", "dev-issuer", 8000), "only the JWKS port is open"
    ports = (8000, 8090, 5432, 6379, 5000, 443)
    assert not any(_can_connect(docs, "dev-issuer", name, port) for name in others for port in ports)
    # Nothing from other namespaces (the ingress controller included) or addresses: in, the gateway's pods
    # alone; out, nothing at all.
    own = [
        p["spec"]
        for p in find(docs, "NetworkPolicy")
        if _matches(p["spec"]["podSelector"], pods["dev-issuer"])
    ]
    peers = [
        x
        for spec in own
        if "Ingress" in spec["policyTypes"]
        for r in spec.get("ingress") or []
        for x in r["from"]
    ]
    gateway = {"app.kubernetes.io/name": "gateway", "app.kubernetes.io/instance": "store"}
    assert peers == [{"podSelector": {"matchLabels": gateway}}]
    assert [r for spec in own if "Egress" in spec["policyTypes"] for r in spec.get("egress") or []] == []
    assert not find(renderer.render(CELLS["flotilla:eks"]), "Deployment", "dev-issuer")


def test_every_service_can_resolve_dns(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla:eks"])
    dns = {"k8s-app": "kube-dns"}
    policies = find(docs, "NetworkPolicy")
    for name, labels in _pods(docs).items():
        rules = [
            r
            for p in policies
            if _matches(p["spec"]["podSelector"], labels)
            for r in p["spec"].get("egress") or []
        ]
        assert any(
            _port_ok(r, 53)
            and any(
                _matches(x.get("podSelector", {}), dns)
                and _matches(x.get("namespaceSelector", {}), {"kubernetes.io/metadata.name": "kube-system"})
                for x in r.get("to", [])
                if "podSelector" in x
            )
            for r in rules
        ), name


def test_gateway_alone_is_public(renderer: Renderer) -> None:
    eks = renderer.render(CELLS["flotilla:eks"])
    (ingress,) = find(eks, "Ingress")
    assert ingress["metadata"]["name"] == "gateway"
    assert ingress["spec"]["ingressClassName"] == "alb"
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/certificate-arn"]
    assert annotations["alb.ingress.kubernetes.io/scheme"] == "internet-facing", "values-eks.yaml says so"
    assert json.loads(annotations["alb.ingress.kubernetes.io/listen-ports"]) == [{"HTTPS": 443}]
    gateway_policy = one(eks, "NetworkPolicy", "gateway")
    assert {"ipBlock": {"cidr": "10.0.0.0/16"}} in gateway_policy["spec"]["ingress"][0]["from"]
    kind = renderer.render(CELLS["flotilla:kind"])
    ingress = one(kind, "Ingress", "gateway")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert not any(k.startswith("alb.") for k in ingress["metadata"].get("annotations", {}))


def test_istio_routes_are_merged_per_host(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla:eks-istio"])
    services = find(docs, "VirtualService")
    hosts = [h for vs in services for h in vs["spec"]["hosts"]]
    assert len(hosts) == len(set(hosts)), "Istio allows one VirtualService per host"
    catalog = one(docs, "VirtualService", "catalog")
    callers = [r["name"] for r in catalog["spec"]["http"]]
    assert callers == ["cart", "gateway", "default"]
    for route in catalog["spec"]["http"][:2]:
        assert route["match"][0]["sourceLabels"]["app.kubernetes.io/name"] == route["name"]
        assert route["timeout"] == "2s" and route["retries"]["attempts"] == 3
    rules = {d["metadata"]["name"] for d in find(docs, "DestinationRule")}
    assert rules == {"gateway-to-catalog", "gateway-to-cart", "cart-to-catalog"}
    for name in ("gateway", "catalog", "cart"):
        env = one(docs, "ConfigMap", name)["data"]
        assert env["FLOTILLA_CLIENT_RETRIES"] == "false"


def test_lattice_service_network(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla:eks-lattice"])
    gateway = one(docs, "Gateway", "flotilla")
    assert gateway["spec"]["gatewayClassName"] == "amazon-vpc-lattice"
    routes = {r["metadata"]["name"]: r for r in find(docs, "HTTPRoute")}
    assert set(routes) == {"gateway", "catalog", "cart"}
    assert all(r["spec"]["parentRefs"][0]["name"] == "flotilla" for r in routes.values())
    assert len(find(docs, "TargetGroupPolicy")) == 3


def test_targets_differ_where_they_should(renderer: Renderer) -> None:
    kind = renderer.render(CELLS["flotilla:kind"])
    eks = renderer.render(CELLS["flotilla:eks"])
    assert one(kind, "ConfigMap", "cart")["data"]["FLOTILLA_AWS_ENDPOINT_URL"] == "http://moto:5000"
    assert "FLOTILLA_AWS_ENDPOINT_URL" not in one(eks, "ConfigMap", "cart")["data"]
    assert one(eks, "ServiceAccount", "cart")["metadata"]["annotations"][
        "eks.amazonaws.com/role-arn"
    ].endswith(":role/flotilla-prod-cart")
    images = {
        c["image"] for d in find(eks, "Deployment") for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert all(i.startswith("123456789012.dkr.ecr.eu-west-1.amazonaws.com/flotilla/") for i in images)
    assert one(kind, "Deployment", "gateway")["spec"]["replicas"] == 1
    assert one(eks, "OpenTelemetryCollector", "flotilla-otel")
    assert one(eks, "ConfigMap", "catalog")["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == (
        "http://flotilla-otel-collector:4318"
    )
    collector = {"app.kubernetes.io/component": "opentelemetry-collector"}
    policies = find(eks, "NetworkPolicy")
    for name in ("gateway", "catalog", "cart"):
        labels = _pods(eks)[name]
        assert _allowed(policies, "egress", labels, collector, 4318), name
        assert _allowed(policies, "ingress", collector, labels, 4318), name


def test_everything_off_installs_only_catalog(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla:everything-off"])
    assert [d["metadata"]["name"] for d in find(docs, "Deployment")] == ["catalog"]
    assert not find(docs, "NetworkPolicy") and not find(docs, "Job")


def test_a_caller_missing_from_allowed_callers_is_cut_off(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla:eks"], "1.35", ["catalog.networkPolicy.allowedCallers={gateway}"])
    assert _can_connect(docs, "gateway", "catalog", 8000)
    assert not _can_connect(docs, "cart", "catalog", 8000)


def test_store_defaults_give_an_internal_https_only_alb(renderer: Renderer) -> None:
    a = one(renderer.render(CELLS["flotilla:defaults"]), "Ingress", "gateway")["metadata"]["annotations"]
    assert a["alb.ingress.kubernetes.io/scheme"] == "internal"
    assert json.loads(a["alb.ingress.kubernetes.io/listen-ports"]) == [{"HTTPS": 443}]
    assert a["alb.ingress.kubernetes.io/ssl-redirect"] == "443"


def test_store_defaults_alone_ask_for_the_host_and_certificate(renderer: Renderer) -> None:
    bare = Cell(STORE_CHART, "bare-defaults")
    with pytest.raises(
        HelmError, match=r"ingress\.alb\.certificateArn is required for gateway's ALB ingress"
    ):
        renderer.render(bare)
    with pytest.raises(HelmError, match=r"ingress\.hosts\[0\]\.host is required for gateway's ALB ingress"):
        renderer.render(bare, "1.35", ["gateway.ingress.alb.certificateArn=" + CERTIFICATE])
    # kind has no ALB: nginx takes the catch-all rule
    kind = one(renderer.render(CELLS["flotilla:kind"]), "Ingress", "gateway")
    assert kind["spec"]["ingressClassName"] == "nginx" and "host" not in kind["spec"]["rules"][0]


CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
