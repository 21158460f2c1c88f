"""The Docker engine as the tests see it: is one answering, which images it has, how containers reach us.

Shared by the backend fixtures and the container tests. Nothing here builds or pulls service images.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from functools import cache
from typing import Any

PULL_TIMEOUT_SECONDS = float(os.environ.get("FLOTILLA_TEST_PULL_TIMEOUT", "120"))


class Engine:
    """A connected Docker client plus the facts the fixtures decide on."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @property
    def has_bridge(self) -> bool:
        """False on engines started with --bridge=none: containers then share the host's network."""
        return bool(self.client.networks.list(names=["bridge"]))

    def has_image(self, image: str) -> bool:
        import docker.errors

        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            return False
        return True

    def ensure_image(self, image: str) -> str | None:
        """None when ``image`` is here or could be pulled, else why not (one line)."""
        if self.has_image(image):
            return None
        if os.environ.get("FLOTILLA_TEST_PULL", "1") == "0":
            return f"{image} is not present and FLOTILLA_TEST_PULL=0"
        try:
            self.client.images.pull(image)
        except Exception as err:
            return f"cannot pull {image}: {first_line(err)}"
        return None


@cache
def engine() -> Engine | None:
    """The local Docker engine, or None when none answers (see :func:`engine_problem`)."""
    return _connect()[0]


def engine_problem() -> str:
    """Why there is no engine, for skip reasons and the report header ('' when there is one)."""
    return _connect()[1]


@cache
def _connect() -> tuple[Engine | None, str]:
    try:
        import docker
    except ImportError:
        return None, "the docker package is not installed"
    try:
        client = docker.from_env(timeout=PULL_TIMEOUT_SECONDS)
        client.ping()
    except Exception as err:
        return None, f"no Docker engine answers ({first_line(err)}); scripts/docker-engine.sh starts one"
    _configure_testcontainers(Engine(client))
    return Engine(client), ""


def _configure_testcontainers(found: Engine) -> None:
    """Run without testcontainers' reaper (Ryuk) when its image cannot be had or it could not be reached.

    Ryuk needs its own image and a published port; on an air-gapped engine without a bridge it can do
    neither, so the fixtures remove their containers themselves (they always do).
    """
    from testcontainers.core.config import testcontainers_config as config

    if config.ryuk_disabled:
        return
    if not found.has_bridge or found.ensure_image(config.ryuk_image) is not None:
        config.ryuk_disabled = True


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``check`` until it returns True; TimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s")
        time.sleep(interval)


def first_line(err: BaseException) -> str:
    """A short, single-line account of ``err`` (the engine's own explanation when it gave one)."""
    text = str(getattr(err, "explanation", None) or err).strip() or type(err).__name__
    line = text.splitlines()[0]
    return line if len(line) <= 120 else line[:117] + "..."
