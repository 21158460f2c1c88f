"""Images: what `make images` tags, the kustomize overlays run, skaffold builds and the chart renders are one set.

`make image-tags` lists the tags a build makes; the kind and minikube overlays must name one of those that is the
same on every commit. skaffold's artifacts must be the images the chart renders, and `skaffold run -p eks
--default-repo <registry>` must render each image with that registry once (the chart's own `imageRegistry` only
serves `helm install` without skaffold).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from deploy_support import (
    CELLS,
    REPO,
    STORE_CHART,
    Cell,
    Renderer,
    containers,
    helm_sets,
    kustomize,
    pod_specs,
    skaffold_config,
    with_profile,
)

OVERLAYS = ["kind", "minikube"]
# Two unrelated commits: a tag both builds make is one the overlays can name for good.
COMMITS = ("0123456789ab", "ba9876543210")
DEFAULT_REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
SKAFFOLD_TAG = "0a1b2c3"  # tagPolicy gitCommit, AbbrevCommitSha


def make_image_tags(commit: str) -> set[str]:
    """Every image reference `make images` tags when the commit's tag is `commit`."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make not found on PATH")
    proc = subprocess.run(
        [make, "-s", "--no-print-directory", "image-tags", f"FLOTILLA_IMAGE_TAG={commit}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return {line.split()[1] for line in proc.stdout.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def stable_tags() -> set[str]:
    """The image references every `make images` makes, whatever the commit."""
    first, second = (make_image_tags(c) for c in COMMITS)
    assert f"flotilla/gateway:{COMMITS[0]}" in first, "make image-tags does not list the commit's tag"
    return first & second


def repository(image: str) -> str:
    """An image reference without its tag or digest."""
    name = image.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def images(docs: list[dict[str, Any]]) -> dict[str, str]:
    """Every container's image, by pod and container."""
    return {f"{where}/{c['name']}": c["image"] for where, spec in pod_specs(docs) for c in containers(spec)}


def flotilla_images(docs: list[dict[str, Any]]) -> dict[str, str]:
    return {where: image for where, image in images(docs).items() if "flotilla" in image}


def chart_images(docs: list[dict[str, Any]]) -> dict[str, set[str]]:
    """The flotilla image repositories each chart's workloads run, by chart (a subchart is named by its alias)."""
    out: dict[str, set[str]] = {}
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        chart = doc["metadata"].get("labels", {}).get("helm.sh/chart", "").rpartition("-")[0]
        for container in containers(doc["spec"]["template"]["spec"]):
            if "flotilla" in container["image"]:
                out.setdefault(chart, set()).add(repository(container["image"]))
    return out


def _template_key(image: str) -> str:
    """How skaffold names an artifact in template variables (IMAGE_REPO_<key>)."""
    return re.sub(r"[^A-Za-z0-9]", "_", image)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_run_the_images_make_images_tags(kubectl: str, stable_tags: set[str], overlay: str) -> None:
    ours = flotilla_images(kustomize(kubectl, overlay))
    assert ours, "no flotilla image in the overlay"
    unbuilt = {where: image for where, image in ours.items() if image not in stable_tags}
    assert not unbuilt, f"images `make images` does not tag (it makes {sorted(stable_tags)}): {unbuilt}"


def test_skaffold_builds_the_images_make_builds_and_the_chart_renders(
    renderer: Renderer, stable_tags: set[str]
) -> None:
    config = skaffold_config()
    artifacts = {a["image"] for a in config["build"]["artifacts"]}
    built = {repository(t) for t in stable_tags}
    assert artifacts <= built, f"skaffold builds images `make images` does not: {sorted(artifacts - built)}"
    # The chart without skaffold (kind values) renders exactly the artifacts' names.
    assert {
        repository(i) for i in flotilla_images(renderer.render(CELLS["flotilla:kind"])).values()
    } == artifacts
    # Each `<alias>.image.repository` template hands the alias the artifact its workloads run without skaffold.
    templates = config["deploy"]["helm"]["releases"][0]["setValueTemplates"]
    aliases = {
        key.removesuffix(".image.repository"): t
        for key, t in templates.items()
        if key.endswith(".image.repository")
    }
    assert aliases
    by_chart = chart_images(renderer.render(CELLS["flotilla:kind"]))
    for alias, template in aliases.items():
        (key,) = re.findall(r"\{\{\s*\.IMAGE_REPO_(\w+)\s*\}\}", template)
        (artifact,) = [a for a in artifacts if _template_key(a) == key]
        assert by_chart.get(alias) == {artifact}, (
            f"{alias}: skaffold sets {artifact}, the chart runs {by_chart.get(alias)}"
        )


# ---- skaffold run -p eks --default-repo: the registry once ------------------------------------------------


def skaffold_image_repo(image: str, default_repo: str, multi_level: bool) -> str:
    """The repository skaffold pushes an artifact to under --default-repo, for a registry other than GCR or
    Artifact Registry: `<default-repo>/<image>` with multi-level-repo, else the image name escaped."""
    return f"{default_repo}/{image if multi_level else re.sub(r'[./:]', '_', image)}"


def skaffold_helm_sets(release: dict[str, Any], variables: dict[str, str]) -> tuple[str, ...]:
    """The `--set`s skaffold passes a helm release: setValues, then setValueTemplates filled in."""

    def fill(template: str) -> str:
        return re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: variables[m.group(1)], template)

    templated = {key: fill(str(t)) for key, t in release.get("setValueTemplates", {}).items()}
    return helm_sets(release.get("setValues", {})) + helm_sets(templated)


@pytest.mark.parametrize("multi_level", [True, False], ids=["multi-level-repo", "escaped"])
def test_eks_with_default_repo_renders_the_registry_once(renderer: Renderer, multi_level: bool) -> None:
    effective = with_profile(skaffold_config(), "eks")
    release = effective["deploy"]["helm"]["releases"][0]
    pushed: dict[str, str] = {}
    variables: dict[str, str] = {}
    for artifact in effective["build"]["artifacts"]:
        repo = skaffold_image_repo(artifact["image"], DEFAULT_REPO, multi_level)
        key = _template_key(artifact["image"])
        variables |= {f"IMAGE_REPO_{key}": repo, f"IMAGE_TAG_{key}": SKAFFOLD_TAG}
        pushed[artifact["image"]] = f"{repo}:{SKAFFOLD_TAG}"
    cell = Cell(
        STORE_CHART,
        f"eks-skaffold-{'multi' if multi_level else 'escaped'}",
        tuple(str(REPO / f) for f in release["valuesFiles"]),
        skaffold_helm_sets(release, variables),
    )
    rendered = flotilla_images(renderer.render(cell))
    assert rendered
    wrong = {where: image for where, image in rendered.items() if image not in pushed.values()}
    assert not wrong, f"not the images skaffold pushed ({sorted(pushed.values())}): {wrong}"
    assert set(rendered.values()) == set(pushed.values()), "every pushed image is deployed"
    for image in rendered.values():
        assert image.count(".amazonaws.com") == 1 and image.startswith(f"{DEFAULT_REPO}/"), image
    if multi_level:
        assert {i.removeprefix(f"{DEFAULT_REPO}/") for i in rendered.values()} == {
            f"flotilla/{s}:{SKAFFOLD_TAG}" for s in ("gateway", "catalog", "cart")
        }


def test_helm_install_on_eks_takes_the_registry_from_values(renderer: Renderer) -> None:
    values = yaml.safe_load((STORE_CHART / "values-eks.yaml").read_text())
    registry = values["global"]["flotilla"]["imageRegistry"]
    rendered = flotilla_images(renderer.render(CELLS["flotilla:eks"]))
    assert {repository(i) for i in rendered.values()} == {
        f"{registry}/flotilla/{s}" for s in ("gateway", "catalog", "cart")
    }
