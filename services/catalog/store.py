"""Catalog queries: keyset pagination, filters and search, in SQL portable across Postgres and SQLite."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.orm import Session

from flotilla.errors import ProblemError
from services.catalog import api
from services.catalog.models import Category, Product


def product_json(product: Product) -> dict[str, Any]:
    return api.Product(
        sku=product.sku,
        name=product.name,
        description=product.description,
        category=product.category.slug,
        price_cents=product.price_cents,
        currency=product.currency,
        stock=product.stock,
        in_stock=product.stock > 0,
        updated_at=_utc(product.updated_at).isoformat(),
    ).model_dump()


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def category_json(category: Category, product_count: int) -> dict[str, Any]:
    return api.Category(
        slug=category.slug, name=category.name, description=category.description, product_count=product_count
    ).model_dump()


def filters_fingerprint(query: api.ProductQuery) -> str:
    """Which filters a cursor was made for: a cursor replayed with other filters would skip or repeat rows."""
    key = orjson.dumps([query.category, query.min_price, query.max_price, query.in_stock, query.q])
    return hashlib.sha256(key).hexdigest()[:12]


def encode_cursor(name: str, sku: str, fingerprint: str) -> str:
    raw = orjson.dumps({"n": name, "s": sku, "f": fingerprint})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str) -> tuple[str, str]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        name, sku, made_for = data["n"], data["s"], data["f"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ProblemError(400, "Bad cursor", "cursor is not one this service issued") from None
    if not isinstance(name, str) or not isinstance(sku, str) or "\x00" in name or "\x00" in sku:
        # Never issued by this service (no stored name or SKU holds a NUL: Postgres text can't).
        raise ProblemError(400, "Bad cursor", "cursor is not one this service issued")
    if made_for != fingerprint:
        raise ProblemError(400, "Bad cursor", "cursor belongs to a query with other filters")
    return name, sku


def list_products(session: Session, query: api.ProductQuery, limit: int) -> dict[str, Any]:
    """One page in (name, sku) order; ``sku`` is unique, so the order is total and a keyset cursor
    (the last row's name and sku) continues exactly after it, however rows are added meanwhile."""
    fingerprint = filters_fingerprint(query)
    stmt = sa.select(Product).join(Product.category)
    if query.category is not None:
        stmt = stmt.where(Category.slug == query.category)
    if query.min_price is not None:
        stmt = stmt.where(Product.price_cents >= query.min_price)
    if query.max_price is not None:
        stmt = stmt.where(Product.price_cents <= query.max_price)
    if query.in_stock is not None:
        stmt = stmt.where(Product.stock > 0 if query.in_stock else Product.stock == 0)
    if query.q is not None:
        stmt = stmt.where(sa.func.lower(Product.name).contains(query.q.lower(), autoescape=True))
    if query.cursor is not None:
        name, sku = decode_cursor(query.cursor, fingerprint)
        stmt = stmt.where(sa.or_(Product.name > name, sa.and_(Product.name == name, Product.sku > sku)))
    rows: Sequence[Product] = session.scalars(stmt.order_by(Product.name, Product.sku).limit(limit + 1)).all()
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].name, page[-1].sku, fingerprint) if len(rows) > limit else None
    return {"items": [product_json(p) for p in page], "next_cursor": next_cursor}


def get_product(session: Session, sku: str) -> Product:
    product = session.scalar(sa.select(Product).where(Product.sku == sku))
    if product is None:
        raise ProblemError(404, "Not Found", f"no product {sku}")
    return product


def get_category(session: Session, slug: str, *, status: int = 404) -> Category:
    """The category, or a problem: 404 when it is the resource asked for, 422 when a body names it."""
    category = session.scalar(sa.select(Category).where(Category.slug == slug))
    if category is None:
        title = "Not Found" if status == 404 else "Unknown category"
        raise ProblemError(status, title, f"no category {slug!r}")
    return category


def list_categories(session: Session) -> dict[str, Any]:
    counts = (
        sa.select(Product.category_id, sa.func.count().label("n")).group_by(Product.category_id).subquery()
    )
    rows = session.execute(
        sa.select(Category, sa.func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.category_id == Category.id)
        .order_by(Category.name, Category.slug)
    ).all()
    return {"items": [category_json(category, int(n)) for category, n in rows]}


def product_count(session: Session, category: Category) -> int:
    return int(session.scalar(sa.select(sa.func.count()).where(Product.category_id == category.id)) or 0)


# --- writes: each raises the problem the API answers with (404, 409, 422); the caller's session commits ----


def _set(target: Product | Category, changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        if value is None:
            raise ProblemError(422, "Invalid value", f"{name} cannot be null")
        setattr(target, name, value)


def _flush(session: Session, conflict: str) -> None:
    """Send the writes now, so a unique key taken meanwhile (a concurrent create) is a 409, not a 500."""
    try:
        session.flush()
    except sa.exc.IntegrityError:
        raise ProblemError(409, "Conflict", conflict) from None


def add_product(session: Session, fields: dict[str, Any], category_slug: str) -> Product:
    sku = fields["sku"]
    if session.scalar(sa.select(Product.id).where(Product.sku == sku)) is not None:
        raise ProblemError(409, "Conflict", f"product {sku} already exists")
    product = Product(**fields, category=get_category(session, category_slug, status=422))
    session.add(product)
    _flush(session, f"product {sku} already exists")
    return product


def update_product(
    session: Session, sku: str, changes: dict[str, Any], category_slug: str | None = None
) -> Product:
    product = get_product(session, sku)
    _set(product, changes)
    if category_slug is not None:
        product.category = get_category(session, category_slug, status=422)
    _flush(session, f"product {sku} conflicts with another")
    return product


def delete_product(session: Session, sku: str) -> None:
    session.delete(get_product(session, sku))


def add_category(session: Session, fields: dict[str, Any]) -> Category:
    slug = fields["slug"]
    if session.scalar(sa.select(Category.id).where(Category.slug == slug)) is not None:
        raise ProblemError(409, "Conflict", f"category {slug!r} already exists")
    category = Category(**fields)
    session.add(category)
    _flush(session, f"category {slug!r} already exists")
    return category


def update_category(session: Session, slug: str, changes: dict[str, Any]) -> Category:
    category = get_category(session, slug)
    _set(category, changes)
    _flush(session, f"category {slug!r} conflicts with another")
    return category


def delete_category(session: Session, slug: str) -> None:
    """Remove an empty category; 409 while it still holds products."""
    category = get_category(session, slug)
    count = product_count(session, category)
    if count:
        raise ProblemError(409, "Conflict", f"category {slug!r} still holds {count} products")
    session.delete(category)
