"""Static discovery: a fixed map from name to base URL, for the local stack and tests."""

from __future__ import annotations

from collections.abc import Mapping

from flotilla.discovery.base import UnknownService


class StaticResolver:
    """Looks names up in ``{"catalog": "http://127.0.0.1:8101"}`` (``FLOTILLA_DISCOVERY_STATIC``)."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._mapping = {name: url.rstrip("/") for name, url in mapping.items()}

    def resolve(self, name: str) -> str:
        try:
            return self._mapping[name]
        except KeyError:
            known = ", ".join(sorted(self._mapping)) or "none"
            raise UnknownService(
                f"no static address for {name!r} (known: {known}); add it to FLOTILLA_DISCOVERY_STATIC"
            ) from None
