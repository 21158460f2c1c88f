"""`skaffold dev` file sync: the image, skaffold.yaml and the chart agree on one directory, and only dev pods get it.

The image puts an empty, 65532-owned directory first on PYTHONPATH (Dockerfile); skaffold syncs `flotilla/**` and
`services/<service>/**` there with their paths kept; the chart's `dev.sync` mounts an emptyDir there (seeded with
the installed packages), adds `serve --reload` and keeps the root filesystem read-only. The dev issuer runs an
artifact of its own without sync, so skaffold never copies into its read-only container.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from deploy_support import (
    CELLS,
    REPO,
    Renderer,
    containers,
    find,
    one,
    pod_specs,
    skaffold_config,
    with_profile,
)

SYNCED = ("gateway", "catalog", "cart")
DEV_ISSUER_IMAGE = "flotilla/dev-issuer"
DEV_ISSUER_TEMPLATE = "{{.IMAGE_FULLY_QUALIFIED_flotilla_dev_issuer}}"


def image_sync_dir() -> str:
    """The first PYTHONPATH entry of the runtime stage, checked to be made empty and owned by 65532."""
    dockerfile = (REPO / "Dockerfile").read_text()
    runtime = dockerfile.split("AS runtime", 1)[1]
    (pythonpath,) = re.findall(r"PYTHONPATH=(\S+)", runtime)
    first = pythonpath.split(":")[0]
    assert first.startswith("/") and "python3" not in first, (
        "the sync directory must not depend on the Python version"
    )
    assert re.search(rf"install -d -o 65532 -g 65532 -m 0755 {re.escape(first)}\b", dockerfile), (
        f"the Dockerfile must create {first} empty and owned by 65532"
    )
    return first


def test_sync_dest_is_the_image_pythonpath_dir() -> None:
    sync_dir = image_sync_dir()
    artifacts = {a["image"]: a for a in skaffold_config()["build"]["artifacts"]}
    for service in SYNCED:
        rules = artifacts[f"flotilla/{service}"]["sync"]["manual"]
        assert {r["src"] for r in rules} == {"flotilla/**/*.py", f"services/{service}/**/*.py"}, service
        for rule in rules:
            # No strip: `flotilla/x.py` lands at <dir>/flotilla/x.py, so the directory holds the import roots.
            assert rule["dest"] == sync_dir and "strip" not in rule, (service, rule)
            # What lands there must be an import root: the chassis package, the service's own package.
            package = Path(rule["src"].removesuffix("/**/*.py"))
            assert (REPO / package / "__init__.py").is_file(), f"{package} is not an importable package"
    # `services` is a namespace package (each service its own distribution), so synced trees of two images
    # could never collide on a shared services/__init__.py.
    assert not (REPO / "services" / "__init__.py").exists()


def test_dev_issuer_has_its_own_artifact_without_sync() -> None:
    config = skaffold_config()
    artifacts = {a["image"]: a for a in config["build"]["artifacts"]}
    issuer = artifacts[DEV_ISSUER_IMAGE]
    assert "sync" not in issuer
    # The same recipe on the dev tools' distribution: the chassis layer comes from the build cache.
    assert issuer["docker"]["dockerfile"] == artifacts["flotilla/gateway"]["docker"]["dockerfile"]
    assert issuer["docker"]["buildArgs"]["PACKAGE"] == "devtools"
    assert (REPO / "devtools" / "pyproject.toml").is_file()
    assert issuer["context"] == artifacts["flotilla/gateway"]["context"]
    templates = config["deploy"]["helm"]["releases"][0]["setValueTemplates"]
    assert templates["devDependencies.devIssuer.image"] == DEV_ISSUER_TEMPLATE


@pytest.mark.parametrize("profile", ["kind", "minikube"])
def test_dev_profiles_turn_on_dev_sync_not_a_writable_root(profile: str) -> None:
    effective = with_profile(skaffold_config(), profile)
    release = effective["deploy"]["helm"]["releases"][0]
    assert release["setValues"] == {f"{s}.dev.sync.enabled": True for s in SYNCED}
    assert "readOnlyRootFilesystem" not in (REPO / "skaffold.yaml").read_text()
    synced = {a["image"] for a in effective["build"]["artifacts"] if "sync" in a}
    assert synced == {f"flotilla/{s}" for s in SYNCED}


def test_eks_profile_has_no_sync_and_no_dev_issuer() -> None:
    effective = with_profile(skaffold_config(), "eks")
    artifacts = effective["build"]["artifacts"]
    assert [a["image"] for a in artifacts] == [f"flotilla/{s}" for s in SYNCED]
    assert all("sync" not in a for a in artifacts)
    release = effective["deploy"]["helm"]["releases"][0]
    assert "setValues" not in release
    # Every template names an artifact the profile still builds.
    built = {a["image"].replace("/", "_").replace("-", "_") for a in artifacts}
    for template in release["setValueTemplates"].values():
        (name,) = re.findall(r"\.IMAGE_[A-Z_]+?_(flotilla_[a-z_]+)\}\}", template)
        assert name in built, template


def _deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in find(docs, "Deployment")}


def test_dev_sync_renders_the_emptydir_and_reload_with_a_read_only_root(renderer: Renderer) -> None:
    sync_dir = image_sync_dir()
    docs = renderer.render(
        CELLS["flotilla:kind-skaffold"], "1.35", (f"devDependencies.devIssuer.image={DEV_ISSUER_IMAGE}:dev",)
    )
    deployments = _deployments(docs)
    for service in SYNCED:
        spec = deployments[service]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["sync"]["emptyDir"]["sizeLimit"], service
        (app,) = [c for c in spec["containers"] if c["name"] == service]
        assert app["args"] == ["serve", service, "--reload"]
        assert {"name": "sync", "mountPath": sync_dir} in app["volumeMounts"]
        (seed,) = [c for c in spec["initContainers"] if c["name"] == "sync-seed"]
        assert seed["image"] == app["image"]
        assert {"name": "sync", "mountPath": sync_dir} in seed["volumeMounts"]
        # The chassis and this image's one service (its /opt/service), nothing else.
        script = seed["command"][-1]
        assert "import os, shutil, flotilla\n" in script and '"/opt/service"' in script and sync_dir in script
        for c in containers(spec):
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, (service, c["name"])
    # The dev issuer runs its own artifact's image and has nothing to sync into.
    issuer = deployments["dev-issuer"]
    assert [c["image"] for c in containers(issuer)] == [f"{DEV_ISSUER_IMAGE}:dev"]
    assert "sync" not in {v["name"] for v in issuer.get("volumes", [])}
    assert all(c["securityContext"]["readOnlyRootFilesystem"] is True for c in containers(issuer))


@pytest.mark.parametrize(
    "cell", ["flotilla:defaults", "flotilla:eks", "flotilla:kind", "flotilla:everything-on"]
)
def test_production_renders_no_sync_and_no_reload(renderer: Renderer, cell: str) -> None:
    docs = renderer.render(CELLS[cell])
    for where, spec in pod_specs(docs):
        assert "sync" not in {v["name"] for v in spec.get("volumes", [])}, where
        for c in containers(spec):
            assert c["name"] != "sync-seed", where
            assert "--reload" not in c.get("args", []), (where, c["name"])
            assert all(m["mountPath"] != image_sync_dir() for m in c.get("volumeMounts", [])), (
                where,
                c["name"],
            )


def test_consumer_with_dev_sync_gets_the_volume_but_no_reload(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla-service:consumer-ack"], "1.35", ("dev.sync.enabled=true",))
    spec = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert "--reload" not in spec["containers"][0]["args"]
    assert {"name": "sync", "mountPath": image_sync_dir()} in spec["containers"][0]["volumeMounts"]


def test_k8s_base_has_no_sync() -> None:
    text = (REPO / "k8s" / "base" / "store.yaml").read_text()
    assert "--reload" not in text and "sync-seed" not in text
    assert Path(image_sync_dir()).as_posix() not in text
