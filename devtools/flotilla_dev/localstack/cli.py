"""``flotilla up``: the whole stack on this machine, in the foreground, until Ctrl-C (``make run``).

A ``flotilla.commands`` entry point (see ``flotilla.commands``). Every flag has a ``FLOTILLA_UP_*`` variable so
tests (and a second stack beside a developer's) can choose another state directory and free ports.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from flotilla.commands import CommandFailed


@click.command()
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="FLOTILLA_STATE_DIR",
    default=Path(".flotilla"),
    show_default=True,
    help="logs, traces, pid files and databases (env FLOTILLA_STATE_DIR).",
)
@click.option(
    "--gateway-port",
    type=click.IntRange(0, 65535),
    envvar="FLOTILLA_UP_GATEWAY_PORT",
    default=8080,
    show_default=True,
    help="the gateway's port; 0 or taken: any free one.",
)
@click.option(
    "--any-ports",
    is_flag=True,
    envvar="FLOTILLA_UP_ANY_PORTS",
    help="every process on a free port instead of the usual ones (tests, a second stack).",
)
@click.option(
    "--workers", type=click.IntRange(1, 8), default=1, show_default=True, help="gunicorn workers each."
)
@click.option(
    "--service",
    "services",
    multiple=True,
    help="run only these services (repeatable; default: every installed service).",
)
@click.option(
    "--postgres/--no-postgres",
    envvar="FLOTILLA_UP_POSTGRES",
    default=True,
    show_default=True,
    help="a local Postgres when installed, or always the SQLite fallback.",
)
@click.option(
    "--redis/--no-redis",
    envvar="FLOTILLA_UP_REDIS",
    default=True,
    show_default=True,
    help="a local Redis when installed, or always the in-process fallback.",
)
@click.option(
    "--ready-timeout", type=float, default=60.0, show_default=True, help="seconds to wait for each process."
)
def up(  # noqa: PLR0917 - click passes options as arguments
    state_dir: Path,
    gateway_port: int,
    any_ports: bool,
    workers: int,
    services: tuple[str, ...],
    postgres: bool,
    redis: bool,
    ready_timeout: float,
) -> None:
    """Start the AWS emulator, Postgres, Redis and every service, print how to call them; Ctrl-C stops."""
    from flotilla_dev.localstack.stack import Options
    from flotilla_dev.localstack.supervisor import StackError
    from flotilla_dev.localstack.up import run

    options = Options(
        state_dir=state_dir.resolve(),
        gateway_port=gateway_port,
        any_ports=any_ports,
        workers=workers,
        services=services,
        use_postgres=postgres,
        use_redis=redis,
        ready_timeout=ready_timeout,
    )
    try:
        code = run(options)
    except StackError as err:
        raise CommandFailed(str(err)) from None
    sys.exit(code)
