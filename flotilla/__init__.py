"""Flotilla: the service chassis for Python microservices on Amazon EKS.

``flotilla.create_app`` composes every piece; each piece (``flotilla.config``, ``flotilla.health``,
``flotilla.metrics``, ``flotilla.tracing``, ``flotilla.logs``, ``flotilla.errors``, ``flotilla.api``)
also works alone.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from flotilla.service import Service

if TYPE_CHECKING:
    from flotilla.app import create_app

try:
    __version__ = version("flotilla")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0-dev"


def __getattr__(name: str) -> Any:
    # Lazy: importing the app pulls in prometheus_client, which must not load before
    # `flotilla serve` has set PROMETHEUS_MULTIPROC_DIR.
    if name == "create_app":
        from flotilla.app import create_app

        return create_app
    raise AttributeError(f"module 'flotilla' has no attribute {name!r}")


__all__ = ["Service", "__version__", "create_app"]
