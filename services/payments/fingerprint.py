"""The key request fingerprints are made with (an HMAC key: the requests carry card numbers).

Its own module, light on imports, because the CLI's preflight reads it before gunicorn forks.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from flotilla.config import ConfigError

if TYPE_CHECKING:
    from flotilla.config.settings import PlatformSettings
    from services.payments.settings import Settings

PURPOSE = "flotilla-payments-request-fingerprint-v1"
MIN_SECRET_LENGTH = 32


def derive_key(secret: str, purpose: str = PURPOSE) -> bytes:
    """A key for one purpose from a secret (HMAC as the derivation): never the secret itself."""
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()


def check_secret(settings: Settings, platform: PlatformSettings) -> None:
    """PAYMENTS_FINGERPRINT_SECRET, when set, is a real key: ``ConfigError`` (one line, exit 2) if not.

    The CLI's preflight runs this for every command, the chart's migration Job included, which may
    run before the shared principal Secret exists: so a missing key is not an error here.
    """
    if settings.fingerprint_secret is None:
        return
    secret = settings.fingerprint_secret.get_secret_value()
    if not secret.strip() or (platform.env != "local" and len(secret) < MIN_SECRET_LENGTH):
        raise ConfigError(
            f"PAYMENTS_FINGERPRINT_SECRET: must not be blank, and at least {MIN_SECRET_LENGTH} "
            f"characters outside FLOTILLA_ENV=local (FLOTILLA_ENV is {platform.env!r})"
        )


def fingerprint_key(settings: Settings, platform: PlatformSettings) -> bytes:
    """From PAYMENTS_FINGERPRINT_SECRET, else from FLOTILLA_PRINCIPAL_SECRET; ``ConfigError`` when
    neither is set (the app needs one; without the principal secret it could not check a caller either)."""
    check_secret(settings, platform)
    if settings.fingerprint_secret is not None:
        return derive_key(settings.fingerprint_secret.get_secret_value())
    if platform.principal_secret is None:
        raise ConfigError(
            "PAYMENTS_FINGERPRINT_SECRET: set it, or FLOTILLA_PRINCIPAL_SECRET to derive it from"
        )
    return derive_key(platform.principal_secret.get_secret_value())
