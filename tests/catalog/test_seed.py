"""``flotilla migrate catalog`` then ``flotilla seed catalog`` against Postgres: 100 products, idempotent."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from flotilla.cli import main
from services.catalog.seed import catalogue
from tests.data.support import fresh_database


def test_the_seed_data_is_a_realistic_catalogue() -> None:
    categories, products = catalogue()
    assert len(categories) == 8
    assert len(products) == 100
    assert len({p.sku for p in products}) == 100
    assert {p.category for p in products} == {c["slug"] for c in categories}


def test_migrate_and_seed_twice(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with fresh_database(postgres_url) as url:
        monkeypatch.setenv("CATALOG_DATABASE_URL", url)
        monkeypatch.delenv("CATALOG_CACHE_URL", raising=False)
        runner = CliRunner()
        assert runner.invoke(main, ["migrate", "catalog"]).exit_code == 0
        first = runner.invoke(main, ["seed", "catalog"])
        assert first.exit_code == 0, first.output
        assert first.output.strip() == "catalog: seeded 8 categories, 100 products"
        again = runner.invoke(main, ["seed", "catalog"])
        assert again.output.strip() == "catalog: already seeded (added 0 categories, 0 products)"
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT count(*) FROM products")) == 100
            assert conn.scalar(sa.text("SELECT count(*) FROM categories")) == 8
        engine.dispose()


def test_seed_before_migrate_says_what_to_do(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with fresh_database(postgres_url) as url:
        monkeypatch.setenv("CATALOG_DATABASE_URL", url)
        result = CliRunner().invoke(main, ["seed", "catalog"])
        assert result.exit_code == 1
        assert "did `flotilla migrate catalog` run?" in result.output
