"""payments: a simulated card provider in Postgres: authorize, capture, void, once per Idempotency-Key."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flotilla import Service
from flotilla.db import Migrations
from flotilla.service import lazy
from services.payments.fingerprint import check_secret
from services.payments.settings import Settings

if TYPE_CHECKING:
    from flotilla.config.settings import PlatformSettings


def _preflight(platform: PlatformSettings, settings: Settings) -> None:
    """Stop with one line (exit 2) when PAYMENTS_FINGERPRINT_SECRET is set but no real key."""
    check_secret(settings, platform)


service = Service(
    name="payments",
    settings=Settings,
    create_app=lazy("services.payments.app:create_app"),
    description=__doc__ or "",
    migrations=Migrations(Path(__file__).parent / "migrations"),
    preflight=_preflight,
)
