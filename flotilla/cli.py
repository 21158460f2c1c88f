"""The ``flotilla`` command: serve a service, show its effective config, probe a URL; plus plug-ins.

Imports are kept inside the commands: ``serve`` must set ``PROMETHEUS_MULTIPROC_DIR`` before
prometheus_client is first imported, and ``flotilla --help`` should be instant.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import click

from flotilla.commands import CommandFailed, load_service_config

COMMANDS_GROUP = "flotilla.commands"


def _plugins() -> dict[str, EntryPoint]:
    """Commands other distributions (and the chassis itself) add, by name: ``flotilla.commands``."""
    return {ep.name: ep for ep in entry_points(group=COMMANDS_GROUP)}


class _PluginGroup(click.Group):
    """Built-in commands plus the ``flotilla.commands`` entry points, each imported only when run,
    so ``flotilla serve`` never pays for the messaging or resources imports."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        builtin = super().get_command(ctx, cmd_name)
        if builtin is not None:
            return builtin
        plugin = _plugins().get(cmd_name)
        if plugin is None:
            return None
        command = plugin.load()
        if not isinstance(command, click.Command):
            raise CommandFailed(f"entry point {plugin.value} ({COMMANDS_GROUP}) is not a click command")
        return command


@click.group(cls=_PluginGroup)
@click.version_option(package_name="flotilla")
def main() -> None:
    """Flotilla: run and inspect chassis services."""


@main.command()
@click.argument("service", envvar="FLOTILLA_SERVICE")
@click.option("--bind", help="host:port to listen on (default FLOTILLA_BIND or 127.0.0.1:8000).")
@click.option("--workers", type=int, help="worker processes (default: from the CPU limit).")
@click.option("--reload", is_flag=True, help="restart workers when code changes (development).")
def serve(service: str, bind: str | None, workers: int | None, reload: bool) -> None:
    """Serve SERVICE under gunicorn with the shared Flotilla config."""
    os.environ["FLOTILLA_SERVICE"] = service
    if bind:
        os.environ["FLOTILLA_BIND"] = bind
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR",
        str(Path(tempfile.gettempdir()) / "flotilla-metrics" / f"{service}-{os.getpid()}"),
    )
    svc, platform, settings = load_service_config(service)
    from flotilla.serving.application import FlotillaApplication

    overrides: dict[str, Any] = {}
    if workers:
        overrides["workers"] = workers
    if reload:
        overrides["reload"] = True
    FlotillaApplication(svc, settings, platform.drain_seconds, overrides).run()


@main.command()
@click.argument("service")
def config(service: str) -> None:
    """Print SERVICE's effective configuration as JSON, secrets masked."""
    from flotilla.config import effective_config

    _, platform, settings = load_service_config(service)
    doc = {"platform": effective_config(platform), "service": effective_config(settings)}
    click.echo(json.dumps(doc, indent=2, default=str))


@main.command()
@click.argument("url")
@click.option("--timeout", default=3.0, show_default=True)
def probe(url: str, timeout: float) -> None:
    """Exit 0 when URL answers 200 (for images without curl: helm tests, exec probes)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - operator-given URL
            status = response.status
    except Exception as err:
        raise CommandFailed(f"{url}: {err}") from None
    if status != 200:
        raise CommandFailed(f"{url}: HTTP {status}")
    click.echo(f"{url}: HTTP {status}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
