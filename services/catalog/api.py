"""Request and response models of the catalog API (pydantic; unknown fields are refused)."""

from __future__ import annotations

from pydantic import Field

from flotilla.api import Body, Model

SKU_PATTERN = r"^[A-Z0-9][A-Z0-9-]{1,39}$"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
# Query strings go into SQL: Postgres text cannot hold a NUL byte, and ``price_cents`` is an INTEGER
# column (32-bit), so a filter outside it is a 422 here rather than an error from the database.
NO_NUL_PATTERN = r"^[^\x00]*$"
CURSOR_PATTERN = r"^[A-Za-z0-9_-]*$"  # unpadded base64url, as store.encode_cursor writes it
PRICE_FILTER_MAX = 2**31 - 1


class SkuPath(Model):
    sku: str = Field(pattern=SKU_PATTERN, description="Stock-keeping unit, e.g. COF-0001.")


class SlugPath(Model):
    slug: str = Field(pattern=SLUG_PATTERN)


class CategoryIn(Body):
    slug: str = Field(pattern=SLUG_PATTERN, description="Stable identifier, used in filters and URLs.")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)


class CategoryPatch(Body):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)


class Category(Model):
    slug: str
    name: str
    description: str
    product_count: int


class CategoryList(Model):
    items: list[Category]


class ProductIn(Body):
    sku: str = Field(pattern=SKU_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    category: str = Field(pattern=SLUG_PATTERN, description="Slug of an existing category.")
    price_cents: int = Field(ge=0, le=100_000_000)
    currency: str = Field("USD", pattern=CURRENCY_PATTERN)
    stock: int = Field(0, ge=0, le=1_000_000)


class ProductPatch(Body):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5000)
    category: str | None = Field(None, pattern=SLUG_PATTERN)
    price_cents: int | None = Field(None, ge=0, le=100_000_000)
    currency: str | None = Field(None, pattern=CURRENCY_PATTERN)
    stock: int | None = Field(None, ge=0, le=1_000_000)


class Product(Model):
    sku: str
    name: str
    description: str
    category: str
    price_cents: int
    currency: str
    stock: int
    in_stock: bool
    updated_at: str


class ProductQuery(Model):
    category: str | None = Field(None, pattern=SLUG_PATTERN, description="Only this category.")
    min_price: int | None = Field(
        None, ge=0, le=PRICE_FILTER_MAX, description="Lowest price in cents (inclusive)."
    )
    max_price: int | None = Field(
        None, ge=0, le=PRICE_FILTER_MAX, description="Highest price in cents (inclusive)."
    )
    in_stock: bool | None = Field(None, description="true: only products with stock; false: only without.")
    q: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        pattern=NO_NUL_PATTERN,
        description="Name contains (case-insensitive); no NUL bytes.",
    )
    limit: int | None = Field(
        None, ge=1, le=500, description="Page size (default and maximum from settings)."
    )
    cursor: str | None = Field(
        None, max_length=500, pattern=CURSOR_PATTERN, description="next_cursor of the previous page."
    )


class ProductPage(Model):
    items: list[Product]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page.")
