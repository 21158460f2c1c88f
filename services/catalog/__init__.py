"""catalog: products and categories in Postgres, read through a Redis cache; writes need ``admin``."""

from pathlib import Path

from flotilla import Service
from flotilla.db import Migrations
from flotilla.service import lazy
from services.catalog.settings import Settings

service = Service(
    name="catalog",
    settings=Settings,
    create_app=lazy("services.catalog.app:create_app"),
    description=__doc__ or "",
    migrations=Migrations(Path(__file__).parent / "migrations"),
    seed=lazy("services.catalog.seed:seed"),
)
