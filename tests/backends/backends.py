"""Start a throwaway Postgres, Redis or moto server: a testcontainers container when the engine has the
image (or can pull it), else a local process on a free loopback port.

Each backend is a context manager yielding a :class:`Running` (URL plus a one-line description for the
pytest header). ``FLOTILLA_TEST_BACKENDS=local`` skips containers; ``=container`` forbids the fallback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flotilla_dev.localstack.backends import (
    POSTGRES_USER,
    postgres_bin_dir,
    postgres_ready,
    redis_ready,
    unprivileged_account,
)

from tests.backends.engine import Engine, engine, engine_problem, first_line, free_port, wait_until

START_TIMEOUT_SECONDS = 60.0
POSTGRES_DB = "postgres"
POSTGRES_FAST = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
INITDB_ARGS = ("-U", POSTGRES_USER, "--auth=trust", "--no-sync", "--encoding=UTF8", "--locale=C")


@dataclass(frozen=True)
class Running:
    url: str
    kind: str  # "container" or "local"
    detail: str


# --- readiness probes: the local stack's (plain sockets, no client library) ---------------------------


def moto_ready(host: str, port: int) -> bool:
    with urllib.request.urlopen(f"http://{host}:{port}/moto-api/data.json", timeout=2) as response:
        return bool(response.status == 200)


# --- what each backend is ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    name: str
    image: str
    container_port: int
    ready: Callable[[str, int], bool]
    url: Callable[[str, int], str]
    # Server arguments to listen on ``host``:``port``, for the image's entrypoint and the local binary.
    listen_args: Callable[[str, int], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] | None = None

    @property
    def image_to_use(self) -> str:
        return os.environ.get(f"FLOTILLA_TEST_{self.name.upper()}_IMAGE", self.image)


POSTGRES = Backend(
    name="postgres",
    image="postgres:16-alpine",
    container_port=5432,
    ready=postgres_ready,
    url=lambda host, port: f"postgresql://{POSTGRES_USER}@{host}:{port}/{POSTGRES_DB}",
    # Durability off: these databases live for one test session.
    listen_args=lambda host, port: ["-p", str(port), "-c", f"listen_addresses={host}", *POSTGRES_FAST],
    env={"POSTGRES_USER": POSTGRES_USER, "POSTGRES_DB": POSTGRES_DB, "POSTGRES_HOST_AUTH_METHOD": "trust"},
)
REDIS = Backend(
    name="redis",
    image="redis:7-alpine",
    container_port=6379,
    ready=redis_ready,
    url=lambda host, port: f"redis://{host}:{port}/0",
    listen_args=lambda host, port: ["--bind", host, "--port", str(port), "--save", "", "--appendonly", "no"],
)
MOTO = Backend(
    name="aws",
    image="motoserver/moto:5.1.4",
    container_port=5000,
    ready=moto_ready,
    url=lambda host, port: f"http://{host}:{port}",
    listen_args=lambda host, port: ["-H", host, "-p", str(port)],
    entrypoint=["moto_server"],
)
BACKENDS = {backend.name: backend for backend in (POSTGRES, REDIS, MOTO)}


# --- choosing ---------------------------------------------------------------------------------------


def plan(backend: Backend) -> tuple[Engine | None, str]:
    """The engine to run ``backend`` in (None: run it locally) and why, in a few words."""
    mode = os.environ.get("FLOTILLA_TEST_BACKENDS", "auto")
    if mode == "local":
        return None, "FLOTILLA_TEST_BACKENDS=local"
    found = engine()
    if found is None:
        problem = engine_problem()
    else:
        problem = found.ensure_image(backend.image_to_use) or ""
        if not problem:
            return found, backend.image_to_use
    if mode == "container":
        raise RuntimeError(f"{backend.name}: FLOTILLA_TEST_BACKENDS=container but {problem}")
    return None, problem


@contextlib.contextmanager
def start(backend: Backend) -> Iterator[Running]:
    """Run ``backend`` for the duration of the ``with`` block."""
    found, why = plan(backend)
    if found is not None:
        try:
            container, running = _start_container(found, backend)
        except Exception as err:
            if os.environ.get("FLOTILLA_TEST_BACKENDS") == "container":
                raise
            why = f"{backend.image_to_use} did not start: {first_line(err)}"
            warnings.warn(f"backend {backend.name}: falling back to a local process: {why}", stacklevel=1)
        else:
            try:
                yield running
            finally:
                container.stop()
            return
    with LOCAL[backend.name]() as url:
        yield Running(url=url, kind="local", detail=f"{local_program(backend)} ({why})")


# --- containers -------------------------------------------------------------------------------------


def _start_container(found: Engine, backend: Backend) -> tuple[Any, Running]:
    """A started, answering container for ``backend`` and where it answers; the caller stops it."""
    from testcontainers.core.container import DockerContainer

    image = backend.image_to_use
    container = DockerContainer(image).with_envs(**backend.env)
    create: dict[str, object] = {"entrypoint": backend.entrypoint} if backend.entrypoint else {}
    host_port = None
    if found.has_bridge:
        container.with_exposed_ports(backend.container_port)
        container.with_command(backend.listen_args("0.0.0.0", backend.container_port))
    else:
        # An air-gapped engine started with --bridge=none: share the host's network, on a free loopback port.
        host_port = free_port()
        create["network_mode"] = "host"
        container.with_command(backend.listen_args("127.0.0.1", host_port))
    container.with_kwargs(**create)
    try:
        container.start()
        host, port = "127.0.0.1", host_port
        if port is None:
            host = container.get_container_host_ip()
            port = int(container.get_exposed_port(backend.container_port))
        wait_until(lambda: backend.ready(host, port), START_TIMEOUT_SECONDS, f"{backend.name} container")
    except BaseException:
        container.stop()
        raise
    return container, Running(url=backend.url(host, port), kind="container", detail=image)


# --- local processes --------------------------------------------------------------------------------


def local_program(backend: Backend) -> str:
    """What runs ``backend`` when no container does."""
    if backend is POSTGRES:
        bin_dir = postgres_bin_dir()
        return f"local {bin_dir / 'postgres'}" if bin_dir else "local postgres (missing)"
    if backend is REDIS:
        return f"local {shutil.which('redis-server') or 'redis-server (missing)'}"
    return "moto ThreadedMotoServer in-process"


def _unprivileged_account() -> tuple[int, int] | None:
    account = unprivileged_account()
    if account is None and os.geteuid() == 0:
        raise RuntimeError("running as root and no postgres or nobody account to run Postgres as")
    return account


@contextlib.contextmanager
def _process(
    argv: list[str], cwd: Path, ready: Callable[[], bool], account: tuple[int, int] | None = None
) -> Iterator[None]:
    """Run ``argv`` until the block ends; its output goes to a log in ``cwd``, quoted if it fails to start."""
    what = f"local {Path(argv[0]).name}"
    log = cwd / f"{Path(argv[0]).name}.log"
    user, group = account or (None, None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            user=user,
            group=group,
        )

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: {log.read_text()[-2000:]}")
        return ready()

    try:
        wait_until(up, START_TIMEOUT_SECONDS, what)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def _local_postgres() -> Iterator[str]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise RuntimeError("no Postgres image and no initdb on PATH or under /usr/lib/postgresql")
    account = _unprivileged_account()
    # Not under pytest's tmp_path: that is private to root, and the server may run as another account.
    root = Path(tempfile.mkdtemp(prefix="flotilla-postgres-"))
    try:
        if account:
            os.chown(root, *account)
        user, group = account or (None, None)
        initdb = [str(bin_dir / "initdb"), "-D", str(root / "data"), *INITDB_ARGS]
        subprocess.run(initdb, check=True, capture_output=True, cwd=root, user=user, group=group)
        port = free_port()
        server = [str(bin_dir / "postgres"), "-D", str(root / "data"), "-k", str(root)]
        server += POSTGRES.listen_args("127.0.0.1", port)
        with _process(server, root, lambda: postgres_ready("127.0.0.1", port), account):
            yield POSTGRES.url("127.0.0.1", port)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _local_redis() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("no Redis image and no redis-server on PATH")
    root = Path(tempfile.mkdtemp(prefix="flotilla-redis-"))
    try:
        port = free_port()
        server = [binary, "--dir", str(root), *REDIS.listen_args("127.0.0.1", port)]
        with _process(server, root, lambda: redis_ready("127.0.0.1", port)):
            yield REDIS.url("127.0.0.1", port)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _local_moto() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        wait_until(lambda: moto_ready(host, port), START_TIMEOUT_SECONDS, "moto server")
        yield MOTO.url(host, port)
    finally:
        server.stop()


LOCAL: dict[str, Callable[[], contextlib.AbstractContextManager[str]]] = {
    POSTGRES.name: _local_postgres,
    REDIS.name: _local_redis,
    MOTO.name: _local_moto,
}
