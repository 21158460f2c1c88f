"""What a service tells the platform about itself, and how the CLI finds a service by name."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic_settings import BaseSettings


@dataclass(frozen=True)
class Service:
    """A service's entry in ``services/<name>/__init__.py``: its name, settings and app factory.

    ``create_app`` takes the loaded settings, so configuration is validated once, before gunicorn
    forks, and a bad setting stops start-up with one line instead of a worker crash loop.
    """

    name: str
    settings: type[BaseSettings]
    create_app: Callable[[Any], Any]
    description: str = ""
    extras: dict[str, Any] = field(default_factory=dict)


class UnknownService(LookupError):
    pass


def load_service(name: str) -> Service:
    """``orders`` → ``services.orders.service``; ``pkg.module:attr`` for services kept elsewhere."""
    module_name, _, attr = name.partition(":")
    if "." not in module_name and not attr:
        module_name = f"services.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            raise UnknownService(f"no service named {name!r} (looked for module {module_name})") from None
        raise
    found = getattr(module, attr or "service", None)
    if not isinstance(found, Service):
        raise UnknownService(f"{module_name} has no Service object named {attr or 'service'!r}")
    return found
