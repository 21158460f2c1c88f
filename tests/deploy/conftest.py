"""Fixtures for the deployment tests: helm, the shared render cache, and the CRD and schema directories."""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path

import pytest
from deploy_support import CrdIndex, Renderer, tool


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.charts)


@pytest.fixture(scope="session")
def helm() -> str:
    path = tool("helm")
    if path is None:
        pytest.skip("helm not found in .tools/bin or on PATH: run `make tools`")
    out = subprocess.run([path, "version", "--short"], capture_output=True, text=True, check=True).stdout
    major, minor = out.strip().lstrip("v").split(".")[:2]
    assert (int(major), int(minor)) >= (3, 16), f"helm {out.strip()} is older than 3.16"
    return path


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = tool("kubectl")
    if path is None:
        pytest.skip("kubectl not found in .tools/bin or on PATH: run `make tools`")
    return path


@pytest.fixture(scope="session")
def renderer(helm: str, tmp_path_factory: pytest.TempPathFactory) -> Renderer:
    # getbasetemp().parent is shared by all xdist workers of one run: each cell is rendered once.
    return Renderer(helm, tmp_path_factory.getbasetemp().parent / "flotilla-renders")


def _dir_from_env(name: str, what: str) -> Path | None:
    value = os.environ.get(name)
    if not value:
        warnings.warn(f"{name} is not set: {what} validation is skipped", stacklevel=2)
        return None
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"{name}={value} is not a directory")
    return path


@pytest.fixture(scope="session")
def crds() -> CrdIndex | None:
    root = _dir_from_env("FLOTILLA_CRDS_DIR", "custom resource")
    return CrdIndex.load(root) if root else None


@pytest.fixture(scope="session")
def schemas_dir() -> Path | None:
    return _dir_from_env("FLOTILLA_SCHEMAS_DIR", "skaffold schema")
