"""flotilla.db against a real Postgres (and SQLite, the local fallback): engine, sessions, readiness,
migrations and the migrate/seed commands."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from flotilla.cli import main
from flotilla.db import Database, DatabaseSettings, Migrations, normalize_url
from services.catalog import service as catalog_service
from tests.data.support import closed_port

assert catalog_service.migrations is not None
MIGRATIONS: Migrations = catalog_service.migrations


def settings(url: str, **extra: object) -> DatabaseSettings:
    return DatabaseSettings(database_url=url, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgres://u:p@h/db", "postgresql+psycopg"),
        ("postgresql://u:p@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg2://u:p@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u:p@h/db", "postgresql+psycopg"),
        ("sqlite:///.flotilla/catalog.db", "sqlite"),
    ],
)
def test_urls_are_normalized_to_psycopg3(given: str, driver: str) -> None:
    assert normalize_url(given).drivername == driver


def test_session_commits_rolls_back_and_applies_statement_timeout(database_url: str) -> None:
    db = Database(settings(database_url, database_statement_timeout_ms=1234))
    try:
        with db.connect() as conn:
            conn.execute(sa.text("CREATE TABLE t (n int)"))
        with db.session() as session:
            session.execute(sa.text("INSERT INTO t VALUES (1)"))
        with pytest.raises(RuntimeError), db.session() as session:
            session.execute(sa.text("INSERT INTO t VALUES (2)"))
            raise RuntimeError("abandon the unit of work")
        with db.session() as session:
            assert session.scalars(sa.text("SELECT n FROM t")).all() == [1]
            assert session.scalar(sa.text("SHOW statement_timeout")) == "1234ms"
        db.check()
    finally:
        db.dispose()


def test_readiness_check_fails_fast_when_the_database_is_unreachable() -> None:
    db = Database(settings(f"postgresql://nobody@127.0.0.1:{closed_port()}/x", database_pool_pre_ping=False))
    with pytest.raises(sa.exc.OperationalError):
        db.check()


def test_migrations_on_a_fresh_database_are_idempotent(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        assert MIGRATIONS.current(engine) is None
        assert MIGRATIONS.upgrade(engine, lock_name="catalog") == (None, "0001")
        assert MIGRATIONS.upgrade(engine, lock_name="catalog") == ("0001", "0001")
        assert set(sa.inspect(engine).get_table_names()) >= {"categories", "products", "alembic_version"}
        assert MIGRATIONS.heads() == ("0001",)
    finally:
        engine.dispose()


def test_migrate_command_on_postgres(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALOG_DATABASE_URL", database_url.replace("+psycopg", ""))
    first = CliRunner().invoke(main, ["migrate", "catalog"])
    assert first.exit_code == 0, first.output
    assert "migrated from empty to 0001" in first.output
    again = CliRunner().invoke(main, ["migrate", "catalog"])
    assert again.exit_code == 0
    assert "already at 0001" in again.output


def test_migrate_and_seed_on_the_sqlite_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CATALOG_DATABASE_URL", "sqlite:///.flotilla/catalog.db")
    monkeypatch.delenv("CATALOG_CACHE_URL", raising=False)
    runner = CliRunner()
    assert runner.invoke(main, ["migrate", "catalog"]).exit_code == 0
    assert (tmp_path / ".flotilla" / "catalog.db").exists()
    seeded = runner.invoke(main, ["seed", "catalog"])
    assert seeded.exit_code == 0, seeded.output
    assert "seeded 8 categories, 100 products" in seeded.output
    assert "added 0 categories, 0 products" in runner.invoke(main, ["seed", "catalog"]).output


def test_commands_fail_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    no_migrations = runner.invoke(main, ["migrate", "sample"])
    assert no_migrations.exit_code == 2
    assert "sample declares no migrations" in no_migrations.output
    monkeypatch.delenv("CATALOG_DATABASE_URL", raising=False)
    unset = runner.invoke(main, ["migrate", "catalog"])
    assert unset.exit_code == 2
    assert "CATALOG_DATABASE_URL" in unset.output
    monkeypatch.setenv("CATALOG_DATABASE_URL", f"postgresql://u:hunter22@127.0.0.1:{closed_port()}/x")
    down = runner.invoke(main, ["migrate", "catalog"])
    assert down.exit_code == 1
    assert "migrating postgresql+psycopg://u:***@127.0.0.1" in down.output
    assert "hunter22" not in down.output
    assert len(down.output.strip().splitlines()) == 1
