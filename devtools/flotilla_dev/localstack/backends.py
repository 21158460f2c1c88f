"""The local stack's backing servers: the AWS emulator, Postgres and Redis, as plain local processes.

Each is found on this machine (no Docker): Postgres from ``initdb`` on PATH or Debian's
``/usr/lib/postgresql/<version>/bin``, Redis from ``redis-server`` on PATH, the emulator from the
``moto`` package. A missing binary is not an error: the stack falls back (see ``flotilla_dev.localstack.stack``).
Readiness is checked with plain sockets, so no client library is needed to know a server is up.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import struct
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from flotilla_dev.localstack.supervisor import ProcessSpec

POSTGRES_USER = "flotilla"
POSTGRES_ADMIN_DB = "postgres"
# A development database: durability off makes start-up and tests fast; the data is throwaway.
_POSTGRES_FAST = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
_INITDB_ARGS = ("-U", POSTGRES_USER, "--auth=trust", "--no-sync", "--encoding=UTF8", "--locale=C")

STOP_PHASE = 1  # backends stop after the services that use them


# --- finding the programs ---------------------------------------------------------------------------


def postgres_bin_dir() -> Path | None:
    """Where ``initdb`` and ``postgres`` are: PATH first, then the newest ``/usr/lib/postgresql/*/bin``."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    return Path(versions[-1]).parent if versions else None


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def emulator_available() -> bool:
    """moto's server extra is a development dependency (``pip install -e '.[test]'``)."""
    return importlib.util.find_spec("moto") is not None and importlib.util.find_spec("werkzeug") is not None


def unprivileged_account() -> tuple[int, int] | None:
    """Postgres refuses to run as root: the ``postgres`` (or ``nobody``) account when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            account = pwd.getpwnam(name)
            return account.pw_uid, account.pw_gid
    return None


# --- readiness --------------------------------------------------------------------------------------


def postgres_ready(host: str, port: int) -> bool:
    """True once the server completes a startup handshake (trust auth), not merely accepts TCP."""
    params = f"user\0{POSTGRES_USER}\0database\0{POSTGRES_ADMIN_DB}\0\0".encode()
    startup = struct.pack("!ii", 8 + len(params), 196608) + params  # protocol 3.0
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(startup)
        head = sock.recv(9)
    # 'R' + length 8 + code 0 is AuthenticationOk; 'E' is an error such as "starting up".
    return len(head) == 9 and head[:1] == b"R" and struct.unpack("!i", head[5:9])[0] == 0


def redis_ready(host: str, port: int) -> bool:
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")


def http_ok(url: str) -> bool:
    """True when ``url`` answers 200 (a service's /readyz, the emulator's data endpoint)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URLs we built
            return bool(response.status == 200)
    except OSError:
        return False


# --- what to run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Postgres:
    """A Postgres server for the stack: its programs, data directory, port and account."""

    bin_dir: Path
    data_dir: Path
    port: int
    account: tuple[int, int] | None

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{POSTGRES_USER}@127.0.0.1:{self.port}/{database}"

    def initdb(self, env: dict[str, str]) -> ProcessSpec:
        argv = [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), *_INITDB_ARGS]
        return ProcessSpec("postgres-init", argv, env=env, account=self.account, stop_phase=STOP_PHASE)

    def server(self, env: dict[str, str]) -> ProcessSpec:
        argv = [
            str(self.bin_dir / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "unix_socket_directories=",  # TCP only: no socket path length or permission trouble
            *_POSTGRES_FAST,
        ]  # fmt: skip
        # SIGINT is Postgres' "fast" shutdown; SIGTERM would wait for every client to disconnect.
        return ProcessSpec(
            "postgres", argv, env=env, account=self.account, stop_signal=signal.SIGINT, stop_phase=STOP_PHASE
        )


def fresh_postgres_dir(state_dir: Path, account: tuple[int, int] | None) -> Path:
    """An empty directory for ``initdb``, owned by the account Postgres runs as.

    ``<state>/postgres`` when that account can reach it; otherwise (a state directory under a
    private parent such as root's pytest temp dir) a directory under the system temp dir, and
    ``<state>/postgres`` becomes a symlink to it so it is still found in one place.
    """
    wanted = state_dir / "postgres"
    _remove(wanted)
    if account is None or _reachable(state_dir.resolve(), *account):
        wanted.mkdir(parents=True)
        target = wanted
    else:
        target = Path(tempfile.mkdtemp(prefix="flotilla-up-postgres-"))
        wanted.symlink_to(target, target_is_directory=True)
    if account is not None:
        os.chown(target, *account)
    return target / "data"


def discard_outside_data(state_dir: Path) -> None:
    """Remove a Postgres data directory kept outside the state dir (see :func:`fresh_postgres_dir`).

    Nothing else would ever clean it: the temp dir has a random name.
    """
    link = state_dir / "postgres"
    if link.is_symlink():
        _remove(link)


def _remove(path: Path) -> None:
    if path.is_symlink():
        shutil.rmtree(path.resolve(), ignore_errors=True)
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _reachable(path: Path, uid: int, gid: int) -> bool:
    """Whether ``uid`` can traverse every directory down to ``path`` (search permission)."""
    for directory in [path, *path.parents]:
        try:
            info = directory.stat()
        except OSError:
            return False
        if info.st_uid == uid:
            bit = stat.S_IXUSR
        elif info.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True


def create_databases(postgres: Postgres, names: list[str]) -> None:
    """One database per service (each owns its data); existing ones are kept."""
    import psycopg

    url = f"postgresql://{POSTGRES_USER}@127.0.0.1:{postgres.port}/{POSTGRES_ADMIN_DB}"
    with psycopg.connect(url, autocommit=True) as conn:
        existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        for name in names:
            if name not in existing:
                conn.execute(f'CREATE DATABASE "{name}"')  # names are service names we chose


def redis_server(binary: str, directory: Path, port: int, env: dict[str, str]) -> ProcessSpec:
    directory.mkdir(parents=True, exist_ok=True)
    argv = [
        binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory),
        "--save", "", "--appendonly", "no",  # nothing on disk: a throwaway cache
    ]  # fmt: skip
    return ProcessSpec("redis", argv, env=env, stop_phase=STOP_PHASE)


def emulator(port: int, env: dict[str, str]) -> ProcessSpec:
    argv = [sys.executable, "-m", "flotilla_dev.localstack.emulator", "--port", str(port)]
    return ProcessSpec("aws", argv, env=env, stop_phase=STOP_PHASE)


def cloudmap_namespace(emulator_url: str, name: str, region: str) -> None:
    """Create the HTTP namespace services register in, once, before they start: left to each
    service, several would race to create it and the emulator would hold duplicates."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "servicediscovery",
        endpoint_url=emulator_url,
        region_name=region,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - the emulator's dummy credentials
        config=Config(inject_host_prefix=False),
    )
    existing = client.list_namespaces()["Namespaces"]
    if not any(namespace["Name"] == name for namespace in existing):
        client.create_http_namespace(Name=name)
