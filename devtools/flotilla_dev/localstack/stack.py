"""What the local stack is made of, worked out from the services themselves, and the order it starts in.

Nothing here names a store service. Each installed service (a ``flotilla.services`` entry point)
says what it needs through what it already declares for production:

- a ``resources.yaml`` next to it: its AWS resources are provisioned in the emulator;
- settings that mix in ``flotilla.db.DatabaseSettings``: a database of its own (``<PREFIX>DATABASE_URL``),
  in the local Postgres or, without one, an SQLite file; ``Service.migrations`` and
  ``Service.seed`` run ``flotilla migrate`` and ``flotilla seed``;
- settings with ``cache_url`` (``flotilla.cache.CacheSettings``) or any ``*redis_url`` field: the
  local Redis, or nothing (the in-process fallback) without one;
- ``Service.consumers``: a ``flotilla consume`` process beside the HTTP one.

The service called ``gateway`` gets the front port (8080) and the dev issuer as its token issuer.
Every process gets the same platform environment: the emulator's endpoint, a static discovery map
of every service, one generated ``FLOTILLA_PRINCIPAL_SECRET``, one trace file, no drain delay.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import secrets
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flotilla_dev.localstack import backends
from flotilla_dev.localstack.supervisor import ProcessSpec

CLOUDMAP_NAMESPACE = "flotilla.local"

GATEWAY = "gateway"
DEFAULT_GATEWAY_PORT = 8080
DEFAULT_ISSUER_PORT = 8090  # flotilla token's default issuer URL, so it works without flags
DEFAULT_SERVICE_PORT_BASE = 8100
DEFAULT_EMULATOR_PORT = 4566
DEFAULT_POSTGRES_PORT = 55432  # not 5432/6379: the machine may run its own servers there
DEFAULT_REDIS_PORT = 56379
REDIS_FIELD_SUFFIXES = ("cache_url", "redis_url")


@dataclass(frozen=True)
class Options:
    """What ``flotilla up`` was asked for (flags or ``FLOTILLA_UP_*``)."""

    state_dir: Path
    gateway_port: int = DEFAULT_GATEWAY_PORT
    any_ports: bool = False
    workers: int = 1
    services: tuple[str, ...] = ()  # empty: every installed service
    use_postgres: bool = True
    use_redis: bool = True
    ready_timeout: float = 60.0
    cwd: Path = field(default_factory=Path.cwd)


class Ports:
    """Hands out loopback ports: the preferred one when it is free, else any free one; never twice."""

    def __init__(self, any_ports: bool = False) -> None:
        self.any_ports = any_ports
        self.given: set[int] = set()

    def pick(self, preferred: int) -> int:
        if preferred and not self.any_ports and preferred not in self.given and _bindable(preferred):
            port = preferred
        else:
            port = _free_port(self.given)
        self.given.add(port)
        return port


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port(avoid: set[int]) -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port


@dataclass
class ServiceUnit:
    """One service of the stack and what starting it involves."""

    name: str
    module: Any  # the Service object
    port: int
    env_prefix: str
    wants_database: bool
    redis_fields: list[str]
    has_resources: bool
    consumer_port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def migrates(self) -> bool:
        return self.module.migrations is not None

    @property
    def seeds(self) -> bool:
        return self.module.seed is not None


@dataclass
class Plan:
    """Everything decided before the first process starts: ports, backends, services, environment."""

    options: Options
    services: list[ServiceUnit]
    emulator_port: int
    issuer_port: int | None
    postgres: backends.Postgres | None
    redis_port: int | None
    redis_binary: str | None
    principal_secret: str
    notes: list[str] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return self.options.state_dir

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def trace_file(self) -> Path:
        return self.state_dir / "traces.jsonl"

    @property
    def issuer_url(self) -> str | None:
        return f"http://127.0.0.1:{self.issuer_port}" if self.issuer_port else None

    @property
    def issuer_dir(self) -> Path:
        return self.state_dir / "dev-issuer"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    @property
    def gateway(self) -> ServiceUnit | None:
        return next((s for s in self.services if s.name == GATEWAY), None)

    def service(self, name: str) -> ServiceUnit:
        return next(s for s in self.services if s.name == name)

    def process_names(self) -> list[str]:
        names = ["aws", "postgres-init", "postgres", "redis", "dev-issuer"]
        for unit in self.services:
            names += [unit.name, f"{unit.name}-worker", f"{unit.name}-provision", f"{unit.name}-migrate"]
        return names

    # --- environment ------------------------------------------------------------------------------

    def base_env(self) -> dict[str, str]:
        """The shell's environment minus anything that could reach a real AWS account, plus the platform's."""
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",  # the emulator's dummy credentials
                "AWS_DEFAULT_REGION": env.get("FLOTILLA_AWS_REGION", "us-east-1"),
                "AWS_ENDPOINT_URL": self.emulator_url,
                "FLOTILLA_ENV": "local",
                "FLOTILLA_AWS_ENDPOINT_URL": self.emulator_url,
                "FLOTILLA_TRACE_FILE": str(self.trace_file),
                "FLOTILLA_DRAIN_SECONDS": "0",
                "FLOTILLA_GRACEFUL_TIMEOUT": "5",
                "FLOTILLA_DISCOVERY": "static",
                "FLOTILLA_DISCOVERY_STATIC": json.dumps({s.name: s.url for s in self.services}),
                # Services also register themselves in the emulator's Cloud Map, as they would
                # where no controller does it (callers here still use the static map: no lookup).
                "FLOTILLA_DISCOVERY_REGISTER": "true",
                "FLOTILLA_DISCOVERY_REGISTER_CREATE_MISSING": "true",
                "FLOTILLA_DISCOVERY_CLOUDMAP_NAMESPACE": CLOUDMAP_NAMESPACE,
                "FLOTILLA_DISCOVERY_REGISTER_ADDRESS": "127.0.0.1",
                "FLOTILLA_PRINCIPAL_SECRET": self.principal_secret,
                "FLOTILLA_DEV_ISSUER_DIR": str(self.issuer_dir),
            }
        )
        if self.issuer_url:
            env["FLOTILLA_DEV_ISSUER_URL"] = self.issuer_url
        return env

    def service_env(self, unit: ServiceUnit) -> dict[str, str]:
        env = self.base_env()
        env["FLOTILLA_DISCOVERY_INSTANCE_ID"] = f"{unit.name}-{unit.port}"
        env["PROMETHEUS_MULTIPROC_DIR"] = str(self.state_dir / "metrics" / unit.name)
        if unit.wants_database:
            env[f"{unit.env_prefix}DATABASE_URL"] = self.database_url(unit)
        fields = unit.module.settings.model_fields
        if unit.name == GATEWAY and self.issuer_url and "jwt_issuer" in fields:
            # The gateway trusts only the issuer it is told about: the stack's dev issuer.
            from flotilla_dev.issuer import DEFAULT_CLIENT_ID

            env[f"{unit.env_prefix}JWT_ISSUER"] = self.issuer_url
            if "jwt_client_ids" in fields:
                env[f"{unit.env_prefix}JWT_CLIENT_IDS"] = json.dumps([DEFAULT_CLIENT_ID])
        if self.redis_port is not None:
            for name in unit.redis_fields:
                env[f"{unit.env_prefix}{name.upper()}"] = f"redis://127.0.0.1:{self.redis_port}/0"
        return env

    def database_url(self, unit: ServiceUnit) -> str:
        if self.postgres is not None:
            return self.postgres.url(unit.name)
        return f"sqlite:///{self.state_dir / f'{unit.name}.db'}"

    # --- processes --------------------------------------------------------------------------------

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "flotilla.cli", *args]

    def serve(self, unit: ServiceUnit) -> ProcessSpec:
        argv = self.cli("serve", unit.name, "--bind", f"127.0.0.1:{unit.port}")
        argv += ["--workers", str(self.options.workers)]
        return ProcessSpec(unit.name, argv, env=self.service_env(unit), cwd=self.options.cwd)

    def consume(self, unit: ServiceUnit) -> ProcessSpec:
        env = self.service_env(unit)
        env["PROMETHEUS_MULTIPROC_DIR"] += "-worker"
        argv = self.cli("consume", unit.name, "--bind", f"127.0.0.1:{unit.consumer_port}")
        return ProcessSpec(f"{unit.name}-worker", argv, env=env, cwd=self.options.cwd)

    def task(self, unit: ServiceUnit, command: str) -> ProcessSpec:
        env = self.service_env(unit)
        env.pop("PROMETHEUS_MULTIPROC_DIR")
        return ProcessSpec(
            f"{unit.name}-{command}", self.cli(command, unit.name), env=env, cwd=self.options.cwd
        )

    def issuer(self) -> ProcessSpec:
        argv = self.cli("dev-issuer", "--bind", f"127.0.0.1:{self.issuer_port}")
        return ProcessSpec("dev-issuer", argv, env=self.base_env(), cwd=self.options.cwd)

    def describe(self) -> dict[str, Any]:
        """The running stack's addresses, written to ``<state>/stack.json`` for tools and tests."""
        return {
            "pid": os.getpid(),
            "gateway": self.gateway.url if self.gateway else None,
            "services": {s.name: s.url for s in self.services},
            "emulator": self.emulator_url,
            "dev_issuer": self.issuer_url,
            "postgres": self.postgres.url("<service>") if self.postgres else None,
            "redis": f"redis://127.0.0.1:{self.redis_port}/0" if self.redis_port else None,
            "logs": str(self.log_dir),
            "traces": str(self.trace_file),
        }


_DROPPED_ENV = frozenset(
    {
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "PROMETHEUS_MULTIPROC_DIR",
    }
)


# --- working out the plan -----------------------------------------------------------------------------


def available_services() -> list[str]:
    """Every installed service (``flotilla.services`` entry points), gateway first."""
    from flotilla.service import installed_services

    return sorted(sorted(installed_services()), key=lambda name: name != GATEWAY)


def make_plan(options: Options) -> Plan:
    """Choose ports and backends and inspect every service; raises ``StackError`` for a bad request."""
    from flotilla.service import UnknownService, load_service
    from flotilla_dev.localstack.supervisor import StackError

    ports = Ports(options.any_ports)
    names = list(options.services) or available_services()
    if not names:
        raise StackError("no services installed (flotilla.services entry points); pip install one")
    units: list[ServiceUnit] = []
    gateway_port = ports.pick(options.gateway_port) if GATEWAY in names else None
    next_port = DEFAULT_SERVICE_PORT_BASE
    for name in names:
        try:
            service = load_service(name)
        except UnknownService as err:
            raise StackError(str(err)) from None
        if name == GATEWAY and gateway_port is not None:
            port = gateway_port
        else:
            next_port += 1
            port = ports.pick(next_port)
        units.append(_unit(service, port))
    for unit in units:
        if unit.module.consumers is not None:
            next_port += 1
            unit.consumer_port = ports.pick(next_port)

    notes: list[str] = []
    postgres = None
    if any(u.wants_database for u in units):
        postgres = _postgres(options, ports, notes)
    redis_port, redis_bin = None, None
    if any(u.redis_fields for u in units):
        redis_bin = backends.redis_binary() if options.use_redis else None
        if redis_bin:
            redis_port = ports.pick(DEFAULT_REDIS_PORT)
        else:
            why = "--no-redis" if not options.use_redis else "no redis-server on PATH"
            notes.append(f"Redis: in-process fallback ({why}): throttling and cache are per process")
    if not backends.emulator_available():
        raise StackError("the AWS emulator needs moto: pip install -e '.[test]' (make venv does)")
    issuer_port = ports.pick(DEFAULT_ISSUER_PORT) if gateway_port is not None else None
    return Plan(
        options=options,
        services=units,
        emulator_port=ports.pick(DEFAULT_EMULATOR_PORT),
        issuer_port=issuer_port,
        postgres=postgres,
        redis_port=redis_port,
        redis_binary=redis_bin,
        principal_secret=secrets.token_urlsafe(32),
        notes=notes,
    )


def _postgres(options: Options, ports: Ports, notes: list[str]) -> backends.Postgres | None:
    bin_dir = backends.postgres_bin_dir() if options.use_postgres else None
    if bin_dir is None:
        why = (
            "--no-postgres" if not options.use_postgres else "no initdb on PATH or under /usr/lib/postgresql"
        )
        notes.append(f"Postgres: embedded SQLite fallback ({why}): files {options.state_dir}/<service>.db")
        return None
    account = backends.unprivileged_account()
    if os.geteuid() == 0 and account is None:
        notes.append("Postgres: SQLite fallback (running as root and no postgres or nobody account)")
        return None
    # The data directory is made when the stack starts (it is recreated each run).
    return backends.Postgres(
        bin_dir, options.state_dir / "postgres" / "data", ports.pick(DEFAULT_POSTGRES_PORT), account
    )


def _unit(service: Any, port: int) -> ServiceUnit:
    settings = service.settings
    prefix = str(settings.model_config.get("env_prefix", "") or "")
    wants_database = _mixes_in(settings, "flotilla.db.settings", "DatabaseSettings")
    redis_fields = [name for name in settings.model_fields if name.endswith(REDIS_FIELD_SUFFIXES)]
    return ServiceUnit(
        name=service.name,
        module=service,
        port=port,
        env_prefix=prefix,
        wants_database=wants_database,
        redis_fields=redis_fields,
        has_resources=_has_resources(service.name),
    )


def _mixes_in(cls: type, module: str, name: str) -> bool:
    with contextlib.suppress(ImportError, AttributeError):
        base = getattr(importlib.import_module(module), name)
        return issubclass(cls, base)
    return False


def _has_resources(name: str) -> bool:
    from flotilla.commands.resources import spec_path

    return spec_path(name).is_file()


@contextlib.contextmanager
def pid_file(path: Path) -> Iterator[None]:
    """``<state>/up.pid`` for as long as the stack runs (see ``flotilla_dev.localstack.up``)."""
    from flotilla_dev.localstack.supervisor import start_time

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()} {start_time(os.getpid())}\n")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
