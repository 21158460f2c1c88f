"""What every ``flotilla`` command shares: one-line failures and loading a service with its settings.

Commands are plug-ins. The chassis' own (``migrate``, ``consume``, ``provision``...) and any other
distribution's (a service's ``api-key``, the dev tools' ``up``) are ``click`` commands named in the
``flotilla.commands`` entry-point group; ``flotilla.cli`` imports one only when it runs. A plug-in
imports ``CommandFailed`` and ``load_service_config`` from here, never from ``flotilla.cli``.
"""

from __future__ import annotations

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
