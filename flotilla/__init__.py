"""Flotilla: the service chassis for Python microservices on Amazon EKS.

``flotilla.create_app`` composes every piece; each piece (``flotilla.config``, ``flotilla.health``,
``flotilla.metrics``, ``flotilla.tracing``, ``flotilla.logs``, ``flotilla.errors``, ``flotilla.api``)
also works alone. Importing this package imports nothing else: a piece (``flotilla.clock``,
``flotilla.ratelimit``) must not pay for the composer, and prometheus_client must not load before
``flotilla serve`` has set ``PROMETHEUS_MULTIPROC_DIR``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flotilla.app import create_app
    from flotilla.service import Service

    __version__: str


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from flotilla.app import create_app

        return create_app
    if name == "Service":
        from flotilla.service import Service

        return Service
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("flotilla")
        except PackageNotFoundError:  # pragma: no cover - a source tree without install
            return "0.0.0-dev"
    raise AttributeError(f"module 'flotilla' has no attribute {name!r}")


__all__ = ["Service", "__version__", "create_app"]
