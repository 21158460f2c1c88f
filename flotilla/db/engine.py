"""Engines and sessions built from ``DatabaseSettings``, and the readiness check.

Postgres is reached through psycopg 3 whatever driver the URL names (``postgresql://`` becomes
``postgresql+psycopg://``), so operators can paste the URL RDS or a secret gives them. SQLite is
the local stack's fallback when no Postgres binary exists; code that stays within SQLAlchemy's
portable constructs runs on both.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from flotilla.db.settings import DatabaseSettings

log = logging.getLogger(__name__)

_POSTGRES_DRIVERS = ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg")


def normalize_url(url: str) -> sa.URL:
    """``postgres://`` / ``postgresql://`` / ``postgresql+psycopg2://`` → ``postgresql+psycopg://``."""
    parsed = make_url(
        url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url
    )
    if parsed.drivername in _POSTGRES_DRIVERS:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_engine(settings: DatabaseSettings) -> sa.Engine:
    """A pooled engine. Nothing connects until first use, so building one at app start is free and
    safe before gunicorn forks."""
    url = normalize_url(settings.database_url.get_secret_value())
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, settings)
    connect_args: dict[str, Any] = {"connect_timeout": settings.database_connect_timeout_seconds}
    if settings.database_statement_timeout_ms:
        connect_args["options"] = f"-c statement_timeout={settings.database_statement_timeout_ms}"
    return sa.create_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout_seconds,
        pool_recycle=settings.database_pool_recycle_seconds,
        pool_pre_ping=settings.database_pool_pre_ping,
        connect_args=connect_args,
    )


def _sqlite_engine(url: sa.URL, settings: DatabaseSettings) -> sa.Engine:
    """SQLite tuned for several gunicorn workers on one file: WAL (readers don't block the writer),
    a busy timeout instead of "database is locked", foreign keys on (off by default in SQLite)."""
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    busy_ms = max(settings.database_statement_timeout_ms, 1000)
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_ms / 1000},
        pool_pre_ping=settings.database_pool_pre_ping,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


class Database:
    """One service's database: the engine, a session factory, and its readiness check.

    Usable alone (``Database(settings).session()``) or as a Flask extension: ``init_app`` keeps it
    in ``app.extensions["flotilla.db"]`` and registers the critical ``database`` check on
    ``/readyz``, because a service that cannot reach its database cannot answer anything useful.
    """

    def __init__(
        self, settings: DatabaseSettings, app: Any = None, *, engine: sa.Engine | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine or create_engine(settings)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any, *, check_timeout: float = 2.0) -> None:
        from flotilla.health import Health

        app.extensions["flotilla.db"] = self
        Health.of(app).add_check("database", self.check, critical=True, timeout=check_timeout)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits when the block ends, rolls back if it raises, always closes.

        Objects stay readable after commit (``expire_on_commit=False``), so a view can serialize
        what it just wrote without another round trip.
        """
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A Core connection in a transaction (committed at the end), e.g. for ``flotilla.messaging.add_event``."""
        with self.engine.begin() as conn:
            yield conn

    def check(self) -> None:
        """Readiness: ``SELECT 1`` through the pool (raises when the database is unreachable)."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def dispose(self) -> None:
        """Close every pooled connection (tests, and processes about to exit)."""
        self.engine.dispose()


def database(app: Any) -> Database:
    """The app's ``Database`` (registered by ``Database.init_app``)."""
    found: Database = app.extensions["flotilla.db"]
    return found
