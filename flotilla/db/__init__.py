"""Relational data for services: engine and sessions from settings, readiness, Alembic migrations.

::

    from flotilla.db import Database, DatabaseSettings, Migrations

    class Settings(ServiceSettings, DatabaseSettings, env_prefix="CATALOG_"): ...

    db = Database(settings, app)        # engine + sessions; /readyz checks it (critical)
    with db.session() as session:       # commit on success, rollback on error
        session.add(...)

Schema changes are Alembic migrations in the service's folder, applied by
``flotilla migrate <service>`` (see ``docs/data.md``).
"""

from flotilla.db.engine import Database, create_engine, database, normalize_url
from flotilla.db.migrations import Migrations, run_migrations
from flotilla.db.settings import DatabaseSettings

__all__ = [
    "Database",
    "DatabaseSettings",
    "Migrations",
    "create_engine",
    "database",
    "normalize_url",
    "run_migrations",
]
