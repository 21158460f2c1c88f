"""catalog: products and categories in Postgres, read through a Redis cache; writes need ``admin``."""

from pathlib import Path

from flotilla import Service
from flotilla.db import Migrations
from services.catalog.settings import Settings


def _create_app(settings: Settings):  # type: ignore[no-untyped-def]
    from services.catalog.app import create_app

    return create_app(settings)


def _seed(settings: Settings) -> dict[str, int]:
    from services.catalog.seed import seed

    return seed(settings)


service = Service(
    name="catalog",
    settings=Settings,
    create_app=_create_app,
    description=__doc__ or "",
    migrations=Migrations(Path(__file__).parent / "migrations"),
    seed=_seed,
)
