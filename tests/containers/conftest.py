"""Fixtures for the container tests: which images exist and a helper that runs one like a pod would.

The images are built before the tests (``make base-image images``), never from here. A test is skipped,
with the reason, when no Docker engine answers or its service's image is not built.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.backends.engine import engine, engine_problem, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(project.parent.name for project in ROOT.glob("services/*/pyproject.toml"))
STARTUP_TIMEOUT_SECONDS = 60.0


def built_images() -> dict[str, str]:
    """service -> image tag that scripts/build-images.sh makes (flotilla/<service>:<git sha>)."""
    listing = subprocess.run(
        [str(ROOT / "scripts" / "build-images.sh"), "--list", *SERVICES],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    return dict(line.split(" ", 1) for line in listing.splitlines() if line)


@pytest.fixture(scope="session")
def service_images() -> dict[str, str]:
    if engine() is None:
        pytest.skip(engine_problem())
    return built_images()


@pytest.fixture(params=SERVICES)
def service(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def image(service: str, service_images: dict[str, str]) -> str:
    """The service's image for this commit, else its :latest; skips when neither is built."""
    found = engine()
    assert found is not None
    wanted = service_images[service]
    for candidate in (wanted, wanted.rsplit(":", 1)[0] + ":latest"):
        if found.has_image(candidate):
            return candidate
    pytest.skip(f"{wanted} is not built (run: make base-image images)")


@dataclass
class Pod:
    """A service container on the host network: read-only rootfs, tmpfs /tmp, listening on a free port."""

    image: str
    service: str
    env: dict[str, str] = field(default_factory=dict)
    command: list[str] | None = None
    port: int = field(default_factory=free_port)
    container: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Pod:
        from testcontainers.core.container import DockerContainer

        container = DockerContainer(self.image)
        container.with_envs(FLOTILLA_BIND=f"127.0.0.1:{self.port}", FLOTILLA_WORKERS="2", **self.env)
        container.with_kwargs(network_mode="host", read_only=True)
        # testcontainers hands this string to the engine as the tmpfs mount options.
        container.with_tmpfs_mount("/tmp", size="rw,nosuid,nodev,size=64m")
        if self.command is not None:
            container.with_command(self.command)
        try:
            container.start()
        finally:
            self.container = container  # stop() removes it even when it was created but did not start
        return self

    @property
    def wrapped(self) -> Any:
        return self.container.get_wrapped_container()

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as err:
            return int(err.code), bytes(err.read())

    def wait_ready(self) -> None:
        """Poll /readyz until 200; fail with the container's output if it exits or never gets there."""

        def ready() -> bool:
            self.wrapped.reload()
            if self.wrapped.status == "exited":
                raise AssertionError(f"{self.image} exited during start-up:\n{self.output()}")
            return self.get("/readyz", timeout=1.0)[0] == 200

        try:
            wait_until(ready, STARTUP_TIMEOUT_SECONDS, f"{self.image} /readyz")
        except TimeoutError as err:
            raise AssertionError(f"{err}\n{self.output()}") from None

    def wait_exit(self, timeout: float) -> int:
        """The exit code, waiting at most ``timeout`` seconds."""
        return int(self.wrapped.wait(timeout=timeout)["StatusCode"])

    def stdout(self) -> str:
        return bytes(self.wrapped.logs(stdout=True, stderr=False)).decode()

    def stderr(self) -> str:
        return bytes(self.wrapped.logs(stdout=False, stderr=True)).decode()

    def output(self) -> str:
        return f"--- stdout\n{self.stdout()[-3000:]}\n--- stderr\n{self.stderr()[-3000:]}"

    def json_logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout().splitlines() if line.strip()]

    def stop(self) -> None:
        if self.container is not None:
            self.container.stop()


PRINCIPAL_SECRET = "container-test-principal-secret"


def _catalog_env(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"CATALOG_DATABASE_URL": request.getfixturevalue("postgres_url")}


def _payments_env(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"PAYMENTS_DATABASE_URL": request.getfixturevalue("postgres_url")}


def _cart_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """cart's readiness needs its DynamoDB table: provision it in the emulator first, as a deploy would."""
    import os

    endpoint = request.getfixturevalue("aws_endpoint")
    env = {"FLOTILLA_AWS_ENDPOINT_URL": endpoint, "FLOTILLA_ENV": "local"}
    subprocess.run(
        [sys.executable, "-m", "flotilla.cli", "provision", "cart"],
        env={**os.environ, **env},
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    keys = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    return {**env, **keys}


# What each service needs to become ready, as its chart would give it; the backends are the suite's
# throwaway ones on loopback (the containers share the host network).
SERVICE_ENV = {"catalog": _catalog_env, "cart": _cart_env, "payments": _payments_env}


@pytest.fixture
def service_env(service: str, request: pytest.FixtureRequest) -> dict[str, str]:
    extra = SERVICE_ENV.get(service)
    return {"FLOTILLA_PRINCIPAL_SECRET": PRINCIPAL_SECRET, **(extra(request) if extra else {})}


@pytest.fixture
def run_pod(image: str, service: str, service_env: dict[str, str]) -> Iterator[Any]:
    """Start containers of ``image`` with extra env or command; all are removed after the test."""
    pods: list[Pod] = []

    def run(env: dict[str, str] | None = None, command: list[str] | None = None) -> Pod:
        pod = Pod(image=image, service=service, env={**service_env, **(env or {})}, command=command).start()
        pods.append(pod)
        return pod

    yield run
    for pod in pods:
        pod.stop()
