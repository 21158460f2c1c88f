"""The ``flotilla`` command: serve a service, show its effective config, print recent traces.

Imports are kept inside the commands: ``serve`` must set ``PROMETHEUS_MULTIPROC_DIR`` before
prometheus_client is first imported, and ``flotilla --help`` should be instant.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click


class CommandFailed(click.ClickException):
    """One readable line on stderr and a chosen exit code (2 for configuration errors)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it from the instance

    def show(self, file: Any = None) -> None:
        click.echo(f"flotilla: {self.format_message()}", err=True)


def load_service_config(service_name: str) -> tuple[Any, Any, Any]:
    """Service, platform settings and service settings, or a one-line failure."""
    from flotilla.config import ConfigError, load_platform, load_settings
    from flotilla.service import UnknownService, load_service

    try:
        service = load_service(service_name)
        platform = load_platform()
        settings = load_settings(service.settings, service=service.name, platform=platform)
        # The chassis' own optional settings, read later by the service client and discovery:
        # a bad value there must stop start-up here too, not crash every worker.
        from flotilla.discovery.settings import load_discovery_settings
        from flotilla.http.policy import load_client_settings

        load_client_settings()
        load_discovery_settings()
        if service.preflight is not None:
            service.preflight(platform, settings)
    except UnknownService as err:
        raise CommandFailed(str(err), exit_code=2) from None
    except ConfigError as err:
        raise CommandFailed(f"{service_name}: {err}", exit_code=ConfigError.exit_code) from None
    return service, platform, settings


# Commands that live with the piece they drive ("name": "module:attribute"), imported only when
# run, so `flotilla serve` never pays for the messaging or resources imports.
LAZY_COMMANDS: dict[str, str] = {
    "consume": "flotilla.messaging.cli:consume",
    "outbox-relay": "flotilla.messaging.cli:outbox_relay",
    "provision": "flotilla.resources.cli:provision",
    "iam-policy": "flotilla.resources.cli:iam_policy",
    "migrate": "flotilla.db.cli:migrate",
    "seed": "flotilla.db.cli:seed",
    "token": "flotilla.auth.cli:token",
    "dev-issuer": "flotilla.auth.cli:dev_issuer",
    "api-key": "services.gateway.cli:api_key",
    "up": "flotilla.localstack.cli:up",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module_name, _, attr = LAZY_COMMANDS[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(module_name), attr)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup)
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
@click.option(
    "--file", "path", type=click.Path(path_type=Path), help="span file (default FLOTILLA_TRACE_FILE)."
)
@click.option("-n", "--limit", default=5, show_default=True, help="how many recent traces.")
@click.option("--trace-id", help="show only this trace.")
def traces(path: Path | None, limit: int, trace_id: str | None) -> None:
    """Print recent traces from the local span file as waterfalls."""
    from flotilla.tracing.waterfall import render_recent

    if path is None:
        from flotilla.config import ConfigError, load_platform

        try:
            path = load_platform().trace_file
        except ConfigError as err:
            raise CommandFailed(str(err), exit_code=2) from None
    click.echo(render_recent(path, limit=limit, trace_id=trace_id))


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
