"""Starting data for the catalog: ``seed_data.yaml`` loaded by ``flotilla seed catalog``.

Idempotent: rows are matched by slug and SKU, missing ones are added, existing ones are left as
they are (an operator's price change survives a re-seed). The cache is invalidated afterwards so
running replicas don't keep serving pages from before the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from flotilla.cache import Cache
from flotilla.db import Database
from services.catalog.models import Category, Product
from services.catalog.settings import Settings

DATA = Path(__file__).with_name("seed_data.yaml")


@dataclass(frozen=True)
class SeedProduct:
    sku: str
    name: str
    description: str
    category: str
    price_cents: int
    stock: int


def catalogue(path: Path = DATA) -> tuple[list[dict[str, str]], list[SeedProduct]]:
    """The categories and products in the data file, SKUs assigned by position."""
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    categories, products = [], []
    for entry in doc["categories"]:
        categories.append({k: entry[k] for k in ("slug", "name", "description")})
        for i, line in enumerate(entry["products"], start=1):
            name, price, stock = (part.strip() for part in line.split("|"))
            products.append(
                SeedProduct(
                    sku=f"{entry['prefix']}-{i:04d}",
                    name=name,
                    description=f"{name}, from our {entry['name'].lower()} range.",
                    category=entry["slug"],
                    price_cents=int(price),
                    stock=int(stock),
                )
            )
    return categories, products


def seed(settings: Settings) -> dict[str, int]:
    """Add the categories and products that are missing; returns how many of each were added."""
    categories, products = catalogue()
    db = Database(settings)
    try:
        with db.session() as session:
            by_slug = {c.slug: c for c in session.scalars(sa.select(Category))}
            new_categories = [Category(**c) for c in categories if c["slug"] not in by_slug]
            session.add_all(new_categories)
            session.flush()
            by_slug |= {c.slug: c for c in new_categories}
            known = set(session.scalars(sa.select(Product.sku)))
            new_products = [
                Product(
                    sku=p.sku,
                    name=p.name,
                    description=p.description,
                    category=by_slug[p.category],
                    price_cents=p.price_cents,
                    currency="USD",
                    stock=p.stock,
                )
                for p in products
                if p.sku not in known
            ]
            session.add_all(new_products)
    finally:
        db.dispose()
    if new_categories or new_products:
        from services.catalog.app import CATEGORIES_TAG, PRODUCTS_TAG, product_tag

        cache = Cache.from_settings(settings, prefix="catalog")
        cache.invalidate_tags(CATEGORIES_TAG, PRODUCTS_TAG, *(product_tag(p.sku) for p in new_products))
    return {"categories": len(new_categories), "products": len(new_products)}
