"""What every resolver does: turn a logical service name into the base URL of one instance."""

from __future__ import annotations

from typing import Protocol


class DiscoveryError(LookupError):
    """The name could not be turned into an address; the message says why."""


class UnknownService(DiscoveryError):
    """The resolver has no entry for the name (a typo, or a missing static mapping)."""


class NoHealthyInstances(DiscoveryError):
    """The registry answered, and no instance of the service is healthy."""


class Resolver(Protocol):
    def resolve(self, name: str) -> str:
        """``http://host:port`` of an instance of ``name``; called per try, so it may vary per call."""
