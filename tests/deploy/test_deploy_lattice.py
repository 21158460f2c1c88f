"""Lattice mode puts VPC Lattice in the request path: callers call Lattice names, Lattice authorizes, pods admit Lattice.

Without a Lattice domain the callers would resolve the ClusterIP and the HTTPRoutes, TargetGroupPolicies and any auth
policy would sit unused. Here each caller's URL is a route's hostname, an IAMAuthPolicy on each route lets exactly
the callers' roles invoke it, and the NetworkPolicies let traffic between services through Lattice only.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from deploy_support import CELLS, CrdIndex, HelmError, Renderer, find, one

LATTICE_RANGE = ipaddress.ip_network("169.254.171.0/24")  # where Lattice connects from and is reached at
CALLS = {("gateway", "catalog"), ("gateway", "cart"), ("cart", "catalog")}


@pytest.fixture(scope="module")
def docs(renderer: Renderer) -> list[dict[str, Any]]:
    return renderer.render(CELLS["flotilla:eks-lattice-iam"])


def _policies_for(docs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [
        p["spec"]
        for p in find(docs, "NetworkPolicy")
        if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == name
    ]


def _peers(spec: dict[str, Any], direction: str, port: int) -> list[dict[str, Any]]:
    key, side = ("ingress", "from") if direction == "ingress" else ("egress", "to")
    return [
        peer
        for rule in spec.get(key) or []
        if "ports" not in rule or any(p.get("port") == port for p in rule["ports"])
        for peer in rule.get(side, [])
    ]


def _covers_lattice(peer: dict[str, Any]) -> bool:
    return "ipBlock" in peer and LATTICE_RANGE.subnet_of(ipaddress.ip_network(peer["ipBlock"]["cidr"]))


def test_callers_call_the_lattice_names_of_the_routes(docs: list[dict[str, Any]]) -> None:
    hostnames = {r["metadata"]["name"]: r["spec"]["hostnames"] for r in find(docs, "HTTPRoute")}
    for caller, callee in CALLS:
        env = one(docs, "ConfigMap", caller)["data"]
        assert env["FLOTILLA_DISCOVERY"] == "static"
        url = urlsplit(json.loads(env["FLOTILLA_DISCOVERY_STATIC"])[callee])
        assert [url.hostname] == hostnames[callee], f"{caller} -> {callee} bypasses Lattice: {url.geturl()}"
        assert not url.hostname.endswith(".svc.cluster.local")
        assert url.port in (None, 80), "the service network's HTTP listener"
        assert env["FLOTILLA_CLIENT_RETRIES"] == "true", "Lattice does not retry: the client does"


def test_traffic_between_services_goes_through_lattice_only(docs: list[dict[str, Any]]) -> None:
    for caller, callee in CALLS:
        assert any(_covers_lattice(p) for s in _policies_for(docs, caller) for p in _peers(s, "egress", 80))
        ingress = [p for s in _policies_for(docs, callee) for p in _peers(s, "ingress", 8000)]
        assert any(_covers_lattice(p) for p in ingress), f"{callee} admits Lattice"
        direct = [
            p
            for p in ingress
            if p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") == caller
        ]
        assert not direct, f"{callee} admits {caller}'s pods directly: Lattice could be skipped"
        egress = [p for s in _policies_for(docs, caller) for p in _peers(s, "egress", 8000)]
        assert not [
            p
            for p in egress
            if p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") == callee
        ]


def _role_of(docs: list[dict[str, Any]], service: str) -> str:
    """The IAM role a service's pods run as: the IRSA annotation, or the role the chart creates through ACK."""
    annotations = one(docs, "ServiceAccount", service)["metadata"].get("annotations") or {}
    if "eks.amazonaws.com/role-arn" in annotations:
        return str(annotations["eks.amazonaws.com/role-arn"])
    role = one(docs, "Role", service)["spec"]["name"]
    return f"arn:aws:iam::123456789012:role/{role}"


def test_each_route_admits_exactly_its_callers_roles(
    docs: list[dict[str, Any]], crds: CrdIndex | None
) -> None:
    policies = {p["metadata"]["name"]: p for p in find(docs, "IAMAuthPolicy")}
    assert set(policies) == {r["metadata"]["name"] for r in find(docs, "HTTPRoute")}
    for name, policy in policies.items():
        if crds is not None:
            assert crds.validate(policy) == []
        assert policy["spec"]["targetRef"] == {
            "group": "gateway.networking.k8s.io",
            "kind": "HTTPRoute",
            "name": name,
        }
        (statement,) = json.loads(policy["spec"]["policy"])["Statement"]
        assert statement["Action"] == "vpc-lattice-svcs:Invoke"
        callers = sorted(_role_of(docs, c) for c, callee in CALLS if callee == name)
        if callers:
            assert statement["Effect"] == "Allow" and statement["Principal"] == {"AWS": callers}, name
        else:
            assert (statement["Effect"], statement["Principal"]) == ("Deny", "*"), (
                f"nobody calls {name} through Lattice"
            )


def test_lattice_without_a_domain_is_refused(renderer: Renderer) -> None:
    with pytest.raises(HelmError, match=r"mesh\.lattice\.domain is required with mesh provider lattice"):
        renderer.render(CELLS["flotilla-service:everything-lattice"], "1.35", ["mesh.lattice.domain="])


def test_iam_auth_is_off_until_asked_for(renderer: Renderer) -> None:
    """Off by default: the chassis client does not sign SigV4 yet, and Lattice would answer 403."""
    docs = renderer.render(CELLS["flotilla:eks-lattice"])
    assert not find(docs, "IAMAuthPolicy") and find(docs, "HTTPRoute")
    docs = renderer.render(
        CELLS["flotilla-service:everything-lattice"], "1.35", ["mesh.lattice.iamAuth.enabled=false"]
    )
    assert not find(docs, "IAMAuthPolicy") and one(docs, "HTTPRoute")
