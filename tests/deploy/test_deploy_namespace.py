"""The namespace's labels reach the cluster on every path: `helm install`, `skaffold run`/`dev` and kustomize.

Pod Security Admission enforces `restricted` only on a namespace labelled for it, and the AWS Load Balancer
Controller injects readiness gates only into pods of a labelled namespace: without the labels both silently do
nothing. The labels come from one place, charts/flotilla-namespace.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml
from deploy_support import (
    CELLS,
    NAMESPACE,
    NAMESPACE_CHART,
    REPO,
    Cell,
    Renderer,
    find,
    helm_sets,
    kustomize,
    one,
    parse,
    skaffold_config,
    with_profile,
)

REQUIRED_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
    "elbv2.k8s.aws/pod-readiness-gate-inject": "enabled",
}


def _has_required_labels(namespace: dict[str, Any]) -> bool:
    labels = namespace["metadata"].get("labels", {})
    return all(labels.get(k) == v for k, v in REQUIRED_LABELS.items())


def test_the_namespace_chart_labels_the_namespace(renderer: Renderer) -> None:
    namespace = one(renderer.render(CELLS["flotilla-namespace:defaults"]), "Namespace")
    assert namespace["metadata"]["name"] == NAMESPACE
    assert _has_required_labels(namespace), namespace["metadata"]["labels"]
    labels = namespace["metadata"]["labels"]
    assert {labels[f"pod-security.kubernetes.io/{m}-version"] for m in ("enforce", "audit", "warn")} == {
        "latest"
    }
    # uninstalling the namespace release must not delete the namespace (and the store in it)
    assert namespace["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_the_store_chart_renders_no_namespace(renderer: Renderer) -> None:
    """One owner: the store release lives in the namespace, so it cannot also create it."""
    for cell_id in ("flotilla:defaults", "flotilla:eks", "flotilla:kind"):
        assert not find(renderer.render(CELLS[cell_id]), "Namespace"), cell_id


@pytest.mark.parametrize("profile", [None, "kind", "minikube", "eks"])
def test_skaffold_deploys_the_labelled_namespace_before_the_store(
    renderer: Renderer, profile: str | None
) -> None:
    config = skaffold_config() if profile is None else with_profile(skaffold_config(), profile)
    releases = {r["name"]: r for r in config["deploy"]["helm"]["releases"]}
    store = releases["store"]
    (namespace_release,) = [r for r in releases.values() if r["chartPath"] == "charts/flotilla-namespace"]
    assert namespace_release["name"] in store.get("dependsOn", []), "the store must wait for its namespace"
    assert not store.get("createNamespace"), "--create-namespace makes an unlabelled namespace first"
    assert namespace_release["namespace"] != store["namespace"], (
        "a release cannot live in the namespace it creates"
    )
    cell = Cell(
        NAMESPACE_CHART,
        f"skaffold-{profile}",
        tuple(str(REPO / f) for f in namespace_release.get("valuesFiles", [])),
        helm_sets(namespace_release.get("setValues", {})),
        release=namespace_release["name"],
    )
    namespace = one(renderer.render(cell), "Namespace")
    assert namespace["metadata"]["name"] == store["namespace"]
    assert _has_required_labels(namespace)


@pytest.mark.parametrize("overlay", ["kind", "minikube"])
def test_kustomize_renders_one_labelled_namespace(kubectl: str, overlay: str) -> None:
    namespaces = find(kustomize(kubectl, overlay), "Namespace")
    assert len(namespaces) == 1, [n["metadata"]["name"] for n in namespaces]
    assert namespaces[0]["metadata"]["name"] == NAMESPACE
    assert _has_required_labels(namespaces[0]), namespaces[0]["metadata"]["labels"]


def test_kustomize_namespace_is_rendered_from_the_chart(renderer: Renderer) -> None:
    committed = parse((REPO / "k8s" / "base" / "namespace.yaml").read_text())
    fresh = subprocess.run(
        [renderer.helm, "template", "flotilla-namespace", str(NAMESPACE_CHART), "--set", "keep=false"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert committed == parse(fresh), "k8s/base/namespace.yaml is stale: run k8s/render.sh"


def test_the_store_installs_where_the_namespace_chart_puts_it() -> None:
    """The chart's default name is the namespace every install command and the kustomize base use."""
    assert yaml.safe_load((NAMESPACE_CHART / "values.yaml").read_text())["name"] == NAMESPACE
    base = yaml.safe_load((REPO / "k8s" / "base" / "kustomization.yaml").read_text())
    assert base["namespace"] == NAMESPACE
