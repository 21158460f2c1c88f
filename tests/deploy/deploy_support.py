"""Render Helm charts once per matrix cell (shared by xdist workers on disk) and validate what comes out."""

from __future__ import annotations

import copy
import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
CHARTS = REPO / "charts"
SERVICE_CHART = CHARTS / "flotilla-service"
STORE_CHART = CHARTS / "flotilla"
NAMESPACE_CHART = CHARTS / "flotilla-namespace"
VALUES = Path(__file__).resolve().parent / "values"
KUBE_VERSIONS = ["1.32", "1.33", "1.34", "1.35", "1.36"]
NAMESPACE = "flotilla"

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Cell:
    """One set of values for one chart: the unit of the render matrix."""

    chart: Path
    name: str
    values: tuple[str, ...] = ()
    sets: tuple[str, ...] = ()
    release: str = "store"

    @property
    def id(self) -> str:
        return f"{self.chart.name}:{self.name}"


def _everything(provider: str) -> Cell:
    return Cell(
        SERVICE_CHART,
        f"everything-{provider}",
        (str(VALUES / "service-everything.yaml"),),
        (f"mesh.provider={provider}",),
        release="svc",
    )


SERVICE_CELLS = [
    Cell(SERVICE_CHART, "defaults", release="svc"),
    *[_everything(p) for p in ("none", "envoy", "istio", "lattice")],
    Cell(SERVICE_CHART, "consumer-ack", (str(VALUES / "service-consumer.yaml"),), release="svc"),
    Cell(SERVICE_CHART, "everything-off", (str(VALUES / "service-off.yaml"),), release="svc"),
    # Envoy durations under a second and with decimals (Envoy wants "0.5s" where Istio takes "500ms")
    Cell(SERVICE_CHART, "envoy-durations", (str(VALUES / "service-envoy-durations.yaml"),), release="svc"),
]
# values-resources.yaml: the store services' resources specs, generated from services/*/resources.yaml
_EKS_FILES = (str(STORE_CHART / "values-eks.yaml"), str(STORE_CHART / "values-resources.yaml"))


def skaffold_config() -> dict[str, Any]:
    """skaffold.yaml as written (no profile applied)."""
    config: dict[str, Any] = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    return config


def _pointer(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for raw in path.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        parts.append(int(part) if part.isdigit() else part)
    return parts


def with_profile(config: dict[str, Any], name: str) -> dict[str, Any]:
    """skaffold.yaml as a profile makes it: its JSON patches (add, replace, remove) applied to a copy."""
    out = copy.deepcopy(config)
    (profile,) = [p for p in config["profiles"] if p["name"] == name]
    for patch in profile.get("patches", []):
        *parents, last = _pointer(patch["path"])
        target: Any = out
        for part in parents:
            target = target[part]
        if patch["op"] == "remove":
            del target[last]
        elif patch["op"] == "add" and isinstance(target, list):
            target.insert(len(target) if last == "-" else int(last), patch["value"])
        else:
            assert patch["op"] in ("add", "replace"), patch
            if patch["op"] == "replace":
                assert last in target or isinstance(target, list), patch["path"]
            target[last] = patch["value"]
    return out


def helm_sets(values: dict[str, Any]) -> tuple[str, ...]:
    """skaffold's setValues (or rendered setValueTemplates) as helm `--set` arguments."""
    return tuple(
        f"{key}={str(value).lower() if isinstance(value, bool) else value}" for key, value in values.items()
    )


def skaffold_profile_sets(profile: str) -> tuple[str, ...]:
    """The `--set`s a skaffold profile adds to the store release (its setValues patch), as helm arguments."""
    release = with_profile(skaffold_config(), profile)["deploy"]["helm"]["releases"][0]
    return helm_sets(release.get("setValues", {}))


# The two values the store cannot default: the gateway's ALB host and certificate (values-eks.yaml sets both).
STORE_SITE = str(VALUES / "store-site.yaml")
STORE_CELLS = [
    Cell(STORE_CHART, "defaults", (STORE_SITE,)),
    Cell(STORE_CHART, "eks", _EKS_FILES),
    Cell(STORE_CHART, "kind", (str(STORE_CHART / "values-kind.yaml"),)),
    # What `skaffold dev -p kind` deploys: values-kind.yaml plus the profile's setValues (dev.sync).
    Cell(
        STORE_CHART, "kind-skaffold", (str(STORE_CHART / "values-kind.yaml"),), skaffold_profile_sets("kind")
    ),
    *[
        Cell(STORE_CHART, f"eks-{p}", _EKS_FILES, (f"global.flotilla.meshProvider={p}",))
        for p in ("envoy", "istio", "lattice")
    ],
    # Lattice with IAM auth on for every service: what a cluster whose clients sign SigV4 would run.
    Cell(
        STORE_CHART,
        "eks-lattice-iam",
        _EKS_FILES,
        (
            "global.flotilla.meshProvider=lattice",
            *(f"{alias}.mesh.lattice.iamAuth.enabled=true" for alias in ("gateway", "catalog", "cart")),
        ),
    ),
    Cell(STORE_CHART, "everything-on", (*_EKS_FILES, str(VALUES / "store-everything.yaml"))),
    Cell(STORE_CHART, "everything-off", (str(VALUES / "store-off.yaml"),)),
]
NAMESPACE_CELLS = [Cell(NAMESPACE_CHART, "defaults", release="flotilla-namespace")]
CELLS = {c.id: c for c in SERVICE_CELLS + STORE_CELLS + NAMESPACE_CELLS}


def tool(name: str) -> str | None:
    """The project's copy in .tools/bin first (what `make tools` installs), then PATH."""
    local = REPO / ".tools" / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


@functools.cache
def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class HelmError(RuntimeError):
    """helm exited non-zero; the message is its stderr."""


class Renderer:
    """`helm template` with an on-disk cache keyed by chart content and arguments.

    xdist workers share the cache directory; a file lock per key makes each cell render exactly once.
    """

    def __init__(self, helm: str, cache_dir: Path) -> None:
        self.helm = helm
        self.cache_dir = cache_dir
        cache_dir.mkdir(parents=True, exist_ok=True)

    def args(self, cell: Cell, kube: str, extra_sets: Iterable[str] = ()) -> list[str]:
        args = [self.helm, "template", cell.release, str(cell.chart), "--namespace", NAMESPACE]
        args += ["--kube-version", f"{kube}.0"]
        for values in cell.values:
            args += ["-f", values]
        for item in (*cell.sets, *extra_sets):
            args += ["--set", item]
        return args

    def render_text(self, cell: Cell, kube: str = "1.35", extra_sets: Iterable[str] = ()) -> str:
        args = self.args(cell, kube, extra_sets)
        key_parts = [*args[1:], _tree_digest(CHARTS)]
        key_parts += [hashlib.sha256(Path(v).read_bytes()).hexdigest() for v in cell.values]
        key = hashlib.sha256("\0".join(key_parts).encode()).hexdigest()[:32]
        out = self.cache_dir / f"{key}.yaml"
        with open(self.cache_dir / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not out.exists():
                proc = subprocess.run(args, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    raise HelmError(proc.stderr.strip())
                tmp = out.with_suffix(".tmp")
                tmp.write_text(proc.stdout)
                tmp.rename(out)
        return out.read_text()

    def render(self, cell: Cell, kube: str = "1.35", extra_sets: Iterable[str] = ()) -> list[dict[str, Any]]:
        return parse(self.render_text(cell, kube, extra_sets))


def parse(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(text, Loader=Loader) if doc]


def kustomize(kubectl: str, overlay: str) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize k8s/overlays/<overlay>`` renders (fails the test if it can't)."""
    proc = subprocess.run(
        [kubectl, "kustomize", str(REPO / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return parse(proc.stdout)


# ---- validation -------------------------------------------------------------------------------------------


@functools.cache
def _core_validator(version: str, kind: str, api_version: str) -> jsonschema.protocols.Validator | None:
    """kubernetes-validate's strict schema for one kind, built once (its own validate() rebuilds per call)."""
    import re

    import referencing
    from kubernetes_validate import utils

    schema_version = [v for v in utils.all_versions() if utils.major_minor(v) <= utils.major_minor(version)][
        -1
    ]
    schema_dir = f"v{schema_version}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(
            f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{group_version}.json", version
        )
    except FileNotFoundError:
        return None
    defs = utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", version)
    registry = referencing.Resource.from_contents(schema) @ referencing.Registry()
    registry = referencing.Resource.from_contents(defs) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_core(doc: dict[str, Any], kube: str) -> list[str] | None:
    """Errors for a core kind at this Kubernetes version, or None when it is not a core kind."""
    validator = _core_validator(f"{kube}.0", doc["kind"], doc["apiVersion"])
    if validator is None:
        return None
    return [_describe(doc, e) for e in validator.iter_errors(doc)]


def _describe(doc: dict[str, Any], error: jsonschema.ValidationError) -> str:
    path = "/".join(str(p) for p in error.absolute_path)
    return f"{doc['kind']}/{doc.get('metadata', {}).get('name')}: {path}: {error.message[:300]}"


def _strict(schema: Any) -> Any:
    """A CRD schema that rejects unknown fields (the API server would silently prune them)."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@dataclass
class CrdIndex:
    """CRD schemas from a directory, looked up by group, version and kind (kinds repeat across groups)."""

    root: Path
    schemas: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> CrdIndex:
        index = cls(root)
        for path in sorted(root.rglob("*.yaml")):
            for doc in yaml.load_all(path.read_text(), Loader=Loader):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for version in spec["versions"]:
                    if not version.get("served", True):
                        continue
                    schema = version.get("schema", {}).get("openAPIV3Schema", {})
                    index.schemas[(spec["group"], version["name"], spec["names"]["kind"])] = schema
        return index

    @functools.cache  # noqa: B019 - one index per session
    def validator(self, group: str, version: str, kind: str) -> jsonschema.protocols.Validator | None:
        schema = self.schemas.get((group, version, kind))
        if schema is None:
            return None
        schema = _strict(schema)
        # metadata is the API server's ObjectMeta, not described by the CRD
        props = schema.setdefault("properties", {})
        props["metadata"] = {"type": "object"}
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        return jsonschema.Draft7Validator(schema)

    def validate(self, doc: dict[str, Any]) -> list[str] | None:
        group, _, version = doc["apiVersion"].rpartition("/")
        validator = self.validator(group, version, doc["kind"])
        if validator is None:
            return None
        return [_describe(doc, e) for e in validator.iter_errors(doc)]

    def __hash__(self) -> int:
        return id(self)


FORBIDDEN_GROUPS = ("appmesh.k8s.aws",)  # App Mesh: end of support 2026-09-30


def check_objects(
    docs: list[dict[str, Any]], kube: str, crds: CrdIndex | None
) -> tuple[list[str], list[str]]:
    """Validation errors, and the custom resources left unchecked because no CRD directory was given."""
    errors: list[str] = []
    unchecked: list[str] = []
    for doc in docs:
        ident = f"{doc['apiVersion']} {doc['kind']}/{doc['metadata'].get('name')}"
        if doc["apiVersion"].split("/")[0] in FORBIDDEN_GROUPS:
            errors.append(f"{ident}: App Mesh resources must never be rendered")
            continue
        found = validate_core(doc, kube)
        if found is None:
            if crds is None:
                unchecked.append(ident)
                continue
            found = crds.validate(doc)
            if found is None:
                errors.append(f"{ident}: neither a Kubernetes {kube} kind nor a CRD in {crds.root}")
                continue
        errors += found
    return errors, unchecked


# ---- queries on rendered documents ------------------------------------------------------------------------


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(docs, kind, name)
    assert len(found) == 1, (
        f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    )
    return found[0]


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every pod spec: Deployments, Jobs, bare Pods (helm tests)."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield f"Pod/{doc['metadata']['name']}", doc["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def config_of(docs: list[dict[str, Any]], name: str) -> dict[str, str]:
    data: dict[str, str] = one(docs, "ConfigMap", name)["data"]
    return data


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
