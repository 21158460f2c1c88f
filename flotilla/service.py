"""What a service tells the platform about itself, and how the CLI finds a service by name."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from pydantic_settings import BaseSettings

if TYPE_CHECKING:  # heavy imports (SQLAlchemy, boto3) only for the types
    from flotilla.db.migrations import Migrations
    from flotilla.messaging.consumer import Consumer
    from flotilla.messaging.outbox import OutboxRelay


@dataclass(frozen=True)
class Service:
    """What a service package exports (its ``flotilla.services`` entry point): name, settings, app factory.

    ``create_app`` takes the loaded settings, so configuration is validated once, before gunicorn
    forks, and a bad setting stops start-up with one line instead of a worker crash loop.
    """

    name: str
    settings: type[BaseSettings]
    create_app: Callable[[Any], Any]
    description: str = ""
    # What else the service runs, each optional; the CLI, the local stack and the charts read them.
    migrations: Migrations | None = None  # `flotilla migrate`, the chart's migration Job
    seed: Callable[[Any], Mapping[str, int]] | None = None  # settings -> rows added; idempotent
    consumers: Callable[[Any], Iterable[Consumer]] | None = None  # settings -> `flotilla consume`
    outbox: Callable[[Any], OutboxRelay] | None = None  # settings -> `flotilla outbox-relay`
    # Checks that need platform and service settings together (a secret required outside local,
    # say). Run by the CLI before gunicorn forks; raise ConfigError to stop with one line, exit 2.
    preflight: Callable[[Any, Any], None] | None = None


def lazy(target: str) -> Callable[..., Any]:
    """``"pkg.module:function"`` as a callable that imports the module on its first call.

    A service package names its app factory (or seed) this way, so importing it to read its name
    and settings (the CLI, the local stack, the charts' tests) doesn't import Flask and the app.
    """
    module_name, _, attr = target.partition(":")
    found: list[Callable[..., Any]] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        if not found:
            found.append(getattr(importlib.import_module(module_name), attr))
        return found[0](*args, **kwargs)

    call.__qualname__ = call.__name__ = target
    return call


class UnknownService(LookupError):
    pass


SERVICES_GROUP = "flotilla.services"


def installed_services() -> dict[str, str]:
    """Service names the installed distributions declare, and the ``module:attr`` each points at.

    A service package registers itself in the ``flotilla.services`` entry-point group (its own
    ``pyproject.toml``), so the chassis never needs to know where the store lives.
    """
    return {ep.name: ep.value for ep in entry_points(group=SERVICES_GROUP)}


def service_module(name: str) -> tuple[str, str]:
    """Module and attribute a service name points at: an installed service's entry point
    (``catalog``), or an explicit ``pkg.module[:attr]`` path for one that declares none."""
    target = installed_services().get(name)
    if target is None:
        if "." not in name and ":" not in name:
            known = ", ".join(sorted(installed_services())) or "none"
            raise UnknownService(
                f"no service named {name!r} (installed: {known}; or give a module path, pkg.module:service)"
            )
        target = name
    module_name, _, attr = target.partition(":")
    return module_name, attr or "service"


def load_service(name: str) -> Service:
    """Import the ``Service`` a name points at (see ``service_module``)."""
    module_name, attr = service_module(name)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            raise UnknownService(f"no service named {name!r} (no module {module_name})") from None
        raise
    found = getattr(module, attr, None)
    if not isinstance(found, Service):
        raise UnknownService(f"{module_name} has no Service object named {attr!r}")
    return found
