"""Alembic migrations a service keeps in its own folder, run by ``flotilla migrate <service>``.

A service declares ``Migrations(Path(__file__).parent / "migrations")`` as its ``Service.migrations``
and keeps a three-line ``env.py`` there that calls :func:`run_migrations` with its metadata. No
``alembic.ini``: the database comes from the service's settings, like everything else, so the
chart's migration Job and a developer's shell configure it the same way.

Migrations run only when asked (the command, the chart's pre-upgrade Job), never at import or app
start: several replicas starting at once would race each other through DDL.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

_CONNECTION = "flotilla.connection"


@dataclass(frozen=True)
class Migrations:
    """Where a service's Alembic scripts live (a folder with ``env.py`` and ``versions/``)."""

    directory: Path
    version_table: str = "alembic_version"

    def config(self, connection: sa.Connection | None = None) -> Config:
        """An Alembic ``Config`` for this folder, bound to ``connection`` when given."""
        cfg = Config()
        cfg.set_main_option("script_location", str(self.directory))
        cfg.attributes[_CONNECTION] = connection
        cfg.attributes["version_table"] = self.version_table
        return cfg

    def heads(self) -> tuple[str, ...]:
        """The newest revision(s) in the folder."""
        return tuple(ScriptDirectory.from_config(self.config()).get_heads())

    def current(self, engine: sa.Engine) -> str | None:
        """The revision the database is at (``None``: never migrated)."""
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": self.version_table})
            return context.get_current_revision()

    def upgrade(
        self, engine: sa.Engine, revision: str = "head", *, lock_name: str = ""
    ) -> tuple[str | None, str | None]:
        """Upgrade to ``revision`` in one transaction; returns (before, after).

        On Postgres the whole upgrade holds a transaction-scoped advisory lock, so two runs at once
        (a Job retried while the first still runs, two developers) queue instead of colliding, and
        DDL is transactional: a failed migration leaves the schema as it was.
        """
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                key = zlib.crc32(f"flotilla-migrate:{lock_name}:{self.version_table}".encode())
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            before = MigrationContext.configure(
                conn, opts={"version_table": self.version_table}
            ).get_current_revision()
            command.upgrade(self.config(conn), revision)
            after = MigrationContext.configure(
                conn, opts={"version_table": self.version_table}
            ).get_current_revision()
        return before, after


def run_migrations(target_metadata: sa.MetaData | None = None, **configure: Any) -> None:
    """The body of a service's ``migrations/env.py``: run against the connection ``Migrations`` passed.

    SQLite gets batch mode (``render_as_batch``): it cannot ``ALTER`` most things, and batch mode
    rebuilds the table instead, so one migration file works on Postgres and on the local fallback.
    """
    from alembic import context

    connection = context.config.attributes.get(_CONNECTION)
    if connection is None:
        raise RuntimeError("run migrations with `flotilla migrate <service>`, which supplies the database")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=context.config.attributes.get("version_table", "alembic_version"),
        render_as_batch=connection.dialect.name == "sqlite",
        **configure,
    )
    with context.begin_transaction():
        context.run_migrations()
