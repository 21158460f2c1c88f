"""What a hardened cluster takes: Pod Security `restricted`, typed resources, forwarded-IP trust, pinned images.

The schema refuses a security context that `restricted` would refuse and a `resources` key Kubernetes does not know,
so the mistake fails `helm install` with the path in the message instead of a pod the API server turns away.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from deploy_support import CELLS, HelmError, Renderer, containers, find, pod_specs
from gunicorn.config import Config
from pod_security import restricted_violations

DIGEST = re.compile(r"@sha256:[a-f0-9]{64}$")
# Third-party images that render without a digest, and why. An entry that no longer applies fails the test.
UNPINNED = {
    "docker.io/motoserver/moto": "dev only (kind, minikube); no published digest of 5.1.4 could be found to pin",
}


def _workloads(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Every pod spec, and the pod the OpenTelemetry operator makes from each collector resource."""
    out = list(pod_specs(docs))
    for collector in find(docs, "OpenTelemetryCollector"):
        spec = collector["spec"]
        container = {
            "name": "otc-container",
            "image": spec["image"],
            "securityContext": spec["securityContext"],
        }
        out.append(
            (
                f"OpenTelemetryCollector/{collector['metadata']['name']}",
                {"securityContext": spec["podSecurityContext"], "containers": [container]},
            )
        )
    return out


@pytest.mark.parametrize("cell_id", list(CELLS))
def test_every_pod_meets_pod_security_restricted(renderer: Renderer, cell_id: str) -> None:
    workloads = _workloads(renderer.render(CELLS[cell_id]))
    assert workloads or cell_id == "flotilla-namespace:defaults"
    violations = [v for where, spec in workloads for v in restricted_violations(where, spec)]
    assert not violations, "\n".join(violations)


def test_the_checker_has_teeth() -> None:
    spec = {
        "securityContext": {"runAsUser": 0},
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
        "containers": [
            {"name": "app", "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}}}
        ],
    }
    found = "\n".join(restricted_violations("Pod/bad", spec))
    for rule in (
        "runAsUser 0",
        "hostPath",
        "privileged",
        "allowPrivilegeEscalation",
        "drop ALL",
        "SYS_ADMIN",
    ):
        assert rule in found, rule


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (["podSecurityContext.runAsUser=0"], "/podSecurityContext/runAsUser"),
        (["podSecurityContext.runAsNonRoot=false"], "/podSecurityContext/runAsNonRoot"),
        (["podSecurityContext.seccompProfile.type=Unconfined"], "/podSecurityContext/seccompProfile/type"),
        (["podSecurityContext.hostNetwork=true"], "hostNetwork"),
        (["containerSecurityContext.runAsUser=0"], "/containerSecurityContext/runAsUser"),
        (["containerSecurityContext.privileged=true"], "/containerSecurityContext/privileged"),
        (
            ["containerSecurityContext.allowPrivilegeEscalation=true"],
            "/containerSecurityContext/allowPrivilegeEscalation",
        ),
        (
            ["containerSecurityContext.readOnlyRootFilesystem=false"],
            "/containerSecurityContext/readOnlyRootFilesystem",
        ),
        (
            ["containerSecurityContext.capabilities.drop={NET_RAW}"],
            "/containerSecurityContext/capabilities/drop",
        ),
        (
            ["containerSecurityContext.capabilities.add={SYS_ADMIN}"],
            "/containerSecurityContext/capabilities/add",
        ),
        (["containerSecurityContext.procMount=Unmasked"], "/containerSecurityContext/procMount"),
        (["resources.requests.memroy=1Gi"], "memroy"),
        (["resources.limits.cpu=lots"], "/resources/limits/cpu"),
        (["resources.limits.memory=128MB"], "/resources/limits/memory"),
        (["resources.claims[0].name=gpu"], "claims"),
        (["mesh.envoy.resources.requests.memroy=64Mi"], "memroy"),
        (["server.forwardedAllowIps=*"], "/server/forwardedAllowIps"),
        (["network.vpcCidr=10.0.0.0"], "/network/vpcCidr"),
        (["mesh.envoy.image.digest=sha256:abc"], "/mesh/envoy/image/digest"),
        (["otelCollector.image.digest=latest"], "/otelCollector/image/digest"),
    ],
)
def test_schema_refuses_what_a_hardened_cluster_refuses(
    renderer: Renderer, sets: list[str], expected: str
) -> None:
    with pytest.raises(HelmError) as err:
        renderer.render(CELLS["flotilla-service:defaults"], "1.35", sets)
    message = str(err.value)
    assert "schema" in message and expected in message, message


def test_the_store_holds_each_service_to_the_same_schema(renderer: Renderer) -> None:
    for sets, expected in (
        (["catalog.containerSecurityContext.privileged=true"], "/containerSecurityContext/privileged"),
        (["gateway.resources.limits.memroy=1Gi"], "memroy"),
    ):
        with pytest.raises(HelmError) as err:
            renderer.render(CELLS["flotilla:defaults"], "1.35", sets)
        assert sets[0].split(".")[0] + ":" in str(err.value) and expected in str(err.value), str(err.value)


def test_schema_takes_every_kubernetes_quantity_form(renderer: Renderer) -> None:
    sets = [
        "resources.requests.cpu=250m",
        "resources.requests.memory=0.5Gi",
        "resources.requests.ephemeral-storage=1G",
        "resources.limits.cpu=2",
        "resources.limits.memory=1e9",
        "containerSecurityContext.capabilities.add={NET_BIND_SERVICE}",
    ]
    (deployment,) = find(renderer.render(CELLS["flotilla-service:defaults"], "1.35", sets), "Deployment")
    app = deployment["spec"]["template"]["spec"]["containers"][0]
    assert app["resources"]["requests"]["ephemeral-storage"] == "1G"
    assert app["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}


# ---- X-Forwarded-* trust: the VPC (the ALB) and loopback, never any peer ---------------------------------


def _forwarded(docs: list[dict[str, Any]]) -> dict[str, str]:
    return {
        d["metadata"]["name"]: d["data"]["FLOTILLA_FORWARDED_ALLOW_IPS"]
        for d in find(docs, "ConfigMap")
        if "FLOTILLA_FORWARDED_ALLOW_IPS" in (d.get("data") or {})
    }


@pytest.mark.parametrize("cell_id", list(CELLS))
def test_forwarded_ips_are_addresses_gunicorn_takes(renderer: Renderer, cell_id: str) -> None:
    for name, value in _forwarded(renderer.render(CELLS[cell_id])).items():
        assert "*" not in value, name
        config = Config()
        config.set("forwarded_allow_ips", value)  # gunicorn's own validator: an IP or a CIDR network each
        assert config.forwarded_allow_ips == value.split(","), name


def test_forwarded_ips_trust_the_vpc_and_loopback(renderer: Renderer) -> None:
    assert set(_forwarded(renderer.render(CELLS["flotilla:eks"])).values()) == {"10.0.0.0/16,127.0.0.1"}
    istio = _forwarded(renderer.render(CELLS["flotilla:eks-istio"]))
    assert set(istio.values()) == {"10.0.0.0/16,127.0.0.1,127.0.0.6"}, (
        "Istio's sidecar connects from 127.0.0.6"
    )
    assert _forwarded(renderer.render(CELLS["flotilla-service:defaults"])) == {"sample": "127.0.0.1"}
    explicit = renderer.render(
        CELLS["flotilla-service:defaults"], "1.35", ["server.forwardedAllowIps=10.1.0.0/24"]
    )
    assert _forwarded(explicit) == {"sample": "10.1.0.0/24"}


# ---- third-party images: repository:tag@digest ------------------------------------------------------------


def _third_party(docs: list[dict[str, Any]]) -> dict[str, str]:
    images = {
        f"{where}/{c['name']}": c["image"] for where, spec in _workloads(docs) for c in containers(spec)
    }
    return {where: image for where, image in images.items() if not re.search(r"(^|/)flotilla/", image)}


def test_every_third_party_image_of_the_matrix_is_pinned_by_digest(renderer: Renderer) -> None:
    seen: set[str] = set()
    unpinned: dict[str, str] = {}
    for cell_id, cell in CELLS.items():
        for where, image in _third_party(renderer.render(cell)).items():
            repository = image.split("@", 1)[0].rsplit(":", 1)[0]
            seen.add(repository)
            if not DIGEST.search(image) and repository not in UNPINNED:
                unpinned[f"{cell_id} {where}"] = image
    assert {"docker.io/envoyproxy/envoy", "docker.io/otel/opentelemetry-collector-contrib"} <= seen
    assert not unpinned, f"third-party images without a digest: {unpinned}"
    assert set(UNPINNED) <= seen, "an UNPINNED entry names an image no cell renders"


def test_an_exception_to_pinning_still_applies(renderer: Renderer) -> None:
    images = _third_party(renderer.render(CELLS["flotilla:kind"])).values()
    for repository in UNPINNED:
        (image,) = {i for i in images if i.startswith(f"{repository}:")}
        assert not DIGEST.search(image), f"{repository} is pinned now: remove it from UNPINNED"


def test_a_digest_pins_the_tag_it_names(renderer: Renderer) -> None:
    digest = "sha256:" + "0" * 64
    docs = renderer.render(
        CELLS["flotilla-service:everything-envoy"], "1.35", [f"mesh.envoy.image.digest={digest}"]
    )
    (envoy,) = [i for i in _third_party(docs).values() if "envoyproxy" in i]
    assert envoy == f"docker.io/envoyproxy/envoy:distroless-v1.39.1@{digest}"
