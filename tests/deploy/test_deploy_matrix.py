"""Every chart renders for every values cell and Kubernetes version, and every object it renders is valid."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from deploy_support import (
    CELLS,
    KUBE_VERSIONS,
    NAMESPACE_CHART,
    REPO,
    SERVICE_CHART,
    STORE_CHART,
    STORE_SITE,
    Cell,
    CrdIndex,
    HelmError,
    Renderer,
    check_objects,
    kustomize,
    parse,
)


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
@pytest.mark.parametrize("cell_id", list(CELLS))
def test_rendered_objects_are_valid(
    renderer: Renderer, crds: CrdIndex | None, cell_id: str, kube: str
) -> None:
    docs = renderer.render(CELLS[cell_id], kube)
    assert docs, "nothing rendered"
    errors, unchecked = check_objects(docs, kube, crds)
    assert not errors, "\n".join(errors)
    if unchecked:
        pytest.skip(f"FLOTILLA_CRDS_DIR unset: custom resources not validated: {', '.join(unchecked)}")


@pytest.mark.parametrize("chart", [SERVICE_CHART, STORE_CHART, NAMESPACE_CHART], ids=lambda p: p.name)
def test_helm_lint_strict(helm: str, chart: Path) -> None:
    values = sorted(chart.glob("values-*.yaml"))
    site = ["-f", STORE_SITE] if chart == STORE_CHART else []  # the ALB host and certificate the store needs
    for extra in [[], *[["-f", str(v)] for v in values]]:
        args = [helm, "lint", "--strict", str(chart), *site, *extra]
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr


# ---- the schema rejects typos and wrong types with a readable message --------------------------------------


@pytest.mark.parametrize(
    ("cell_id", "sets", "expected"),
    [
        ("flotilla-service:defaults", ["replicaCont=3"], ["replicaCont", "additional propert"]),
        ("flotilla-service:defaults", ["ingress.alb.shceme=internal"], ["shceme", "additional propert"]),
        ("flotilla-service:defaults", ["mesh.provider=appmesh"], ["/mesh/provider", "must be one of"]),
        ("flotilla-service:defaults", ["server.drainSeconds=soon"], ["drainSeconds", "integer"]),
        (
            "flotilla-service:defaults",
            ["upstreams.catalog.retries.attemps=2"],
            ["attemps", "additional propert"],
        ),
        ("flotilla:defaults", ["catalog.replicaCont=3"], ["catalog", "replicaCont"]),
        (
            "flotilla:defaults",
            ["devDependencies.postgress.enabled=true"],
            ["postgress", "additional propert"],
        ),
    ],
)
def test_schema_rejects_typos_and_wrong_types(
    renderer: Renderer, cell_id: str, sets: list[str], expected: list[str]
) -> None:
    with pytest.raises(HelmError) as err:
        renderer.render(CELLS[cell_id], "1.35", sets)
    message = str(err.value)
    assert "schema" in message, message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in helm's message:\n{message}"


def test_values_files_match_their_schema() -> None:
    """Cheap and exact: every shipped values file satisfies the schema without helm's merging."""
    service_schema = json.loads((SERVICE_CHART / "values.schema.json").read_text())
    jsonschema.validate(yaml.safe_load((SERVICE_CHART / "values.yaml").read_text()), service_schema)
    store_schema = json.loads((STORE_CHART / "values.schema.json").read_text())
    store_values = yaml.safe_load((STORE_CHART / "values.yaml").read_text())
    jsonschema.validate(store_values, store_schema)
    service_defaults = yaml.safe_load((SERVICE_CHART / "values.yaml").read_text())
    for alias in ("gateway", "catalog", "cart"):
        jsonschema.validate(_merge(service_defaults, store_values[alias]), service_schema)


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def _objects_without_additional_properties(schema: dict, path: str = "") -> list[str]:
    bad = []
    closable = schema.get("type") == "object" and "properties" in schema and path != "/global"
    if closable and schema.get("additionalProperties") is not False:
        bad.append(path or "/")
    for key, sub in schema.get("properties", {}).items():
        bad += _objects_without_additional_properties(sub, f"{path}/{key}")
    for sub in (schema.get("items"), schema.get("additionalProperties")):
        if isinstance(sub, dict):
            bad += _objects_without_additional_properties(sub, f"{path}/*")
    return bad


@pytest.mark.parametrize("chart", [SERVICE_CHART, STORE_CHART, NAMESPACE_CHART], ids=lambda p: p.name)
def test_schema_closes_every_object(chart: Path) -> None:
    schema = json.loads((chart / "values.schema.json").read_text())
    assert _objects_without_additional_properties(schema) == []


# ---- kustomize overlays and skaffold ----------------------------------------------------------------------


@pytest.mark.parametrize("overlay", ["kind", "minikube"])
def test_kustomize_overlay_is_valid(kubectl: str, crds: CrdIndex | None, overlay: str) -> None:
    docs = kustomize(kubectl, overlay)
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "Deployment", "Service", "NetworkPolicy", "Ingress"} <= kinds
    assert all(
        d["metadata"].get("namespace", "flotilla") == "flotilla" for d in docs if d["kind"] != "Namespace"
    )
    assert not [d for d in docs if d["kind"] == "Pod"], "helm test pods do not belong in a kustomize render"
    for kube in KUBE_VERSIONS:
        errors, _ = check_objects(docs, kube, crds)
        assert not errors, "\n".join(errors)


def test_kustomize_base_is_rendered_from_the_current_chart(renderer: Renderer) -> None:
    committed = (REPO / "k8s" / "base" / "store.yaml").read_text()
    cell = Cell(STORE_CHART, "kind-base", (str(STORE_CHART / "values-kind.yaml"),))
    args = [renderer.helm, "template", "store", str(STORE_CHART), "--namespace", "flotilla", "--skip-tests"]
    args += ["--set", "principalSecret.generateForDev=false"]  # kustomize's secretGenerator makes it
    fresh = subprocess.run([*args, "-f", cell.values[0]], capture_output=True, text=True, check=True).stdout
    assert parse(committed) == parse(fresh), "k8s/base/store.yaml is stale: run k8s/render.sh"


def test_skaffold_config(schemas_dir: Path | None) -> None:
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    assert config["apiVersion"] == "skaffold/v4beta14"
    artifacts = {a["image"]: a for a in config["build"]["artifacts"]}
    assert set(artifacts) == {"flotilla/gateway", "flotilla/catalog", "flotilla/cart", "flotilla/dev-issuer"}
    for image, artifact in artifacts.items():
        assert artifact["docker"]["dockerfile"] == "Dockerfile"
        service = image.split("/")[1]
        expected = {"SERVICE": service} | ({"PACKAGE": "devtools"} if service == "dev-issuer" else {})
        assert artifact["docker"]["buildArgs"] == expected
    release = config["deploy"]["helm"]["releases"][0]
    assert release["chartPath"] == "charts/flotilla"
    for image in artifacts.keys() - {"flotilla/dev-issuer"}:
        service = image.split("/")[1]
        key = image.replace("/", "_")
        assert release["setValueTemplates"][f"{service}.image.repository"] == f"{{{{.IMAGE_REPO_{key}}}}}"
        assert release["setValueTemplates"][f"{service}.image.tag"] == f"{{{{.IMAGE_TAG_{key}}}}}"
    assert config["portForward"] == [
        {
            "resourceType": "service",
            "resourceName": "gateway",
            "namespace": "flotilla",
            "port": 80,
            "localPort": 8080,
        }
    ]
    profiles = {p["name"]: p for p in config["profiles"]}
    assert set(profiles) == {"kind", "minikube", "eks"}
    assert profiles["kind"]["build"]["local"]["push"] is False
    assert profiles["eks"]["build"]["local"]["push"] is True
    assert {
        "op": "replace",
        "path": "/deploy/helm/releases/0/valuesFiles",
        "value": ["charts/flotilla/values-eks.yaml", "charts/flotilla/values-resources.yaml"],
    } in profiles["eks"]["patches"]
    if schemas_dir is None:
        pytest.skip("FLOTILLA_SCHEMAS_DIR unset: skaffold.yaml not validated against skaffold's schema")
    schema = json.loads((schemas_dir / "skaffold-v4beta14.json").read_text())
    jsonschema.validate(config, schema)
    broken = {**config, "build": {**config["build"], "artifact": []}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
