"""Request and response models of the cart API."""

from __future__ import annotations

from pydantic import Field

from flotilla.api import Body, Model

SKU_PATTERN = r"^[A-Z0-9][A-Z0-9-]{1,39}$"


class SkuPath(Model):
    sku: str = Field(pattern=SKU_PATTERN)


class SetQuantity(Body):
    quantity: int = Field(ge=1, le=10_000, description="The quantity to hold (replaces the current one).")


class AddItem(Body):
    sku: str = Field(pattern=SKU_PATTERN)
    quantity: int = Field(1, ge=1, le=10_000, description="Added to what the cart already holds.")


class Line(Model):
    sku: str
    name: str
    quantity: int
    unit_price_cents: int = Field(description="Catalog price when the line was last changed.")
    line_total_cents: int
    currency: str


class Cart(Model):
    items: list[Line]
    total_cents: int
    currency: str | None
    version: int = Field(description="Also the ETag; send it back in If-Match to change the cart.")
    expires_at: str | None = Field(description="When the cart expires unless changed again (ISO 8601).")
