"""HTTP API of the cart: the caller's own cart only (``/cart``), changed with optimistic concurrency.

There is no URL with a user id in it: the cart is always the signed principal's, so another user's
cart cannot even be named (any ``/carts/<id>`` is 404 to everyone).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from flask import Response, g, jsonify, request
from flask_openapi3.models.tag import Tag
from flask_openapi3.openapi import OpenAPI

from flotilla import aws
from flotilla import create_app as create_chassis_app
from flotilla.config import load_settings
from flotilla.errors import ProblemError
from flotilla.health import Health
from flotilla.http import ServiceClient
from flotilla.principal import current_principal, platform_secret, require_principal
from flotilla.resources import physical_name
from services.cart import api
from services.cart.settings import Settings
from services.cart.store import CartStore, LineItem, StoredCart, VersionConflict, ttl_attribute

CART = Tag(name="cart")
SCOPE = "cart"
SERVICE = "cart"
WRITE_ATTEMPTS = 3  # read-modify-write retries on a concurrent change when the client sent no If-Match
_ANY = -1  # If-Match: *
MAX_VERSION_DIGITS = 18  # a longer If-Match can't be a version (a version fits a signed 64-bit integer)


def create_app(settings: Settings | None = None) -> OpenAPI:
    settings = settings or load_settings(Settings, service=SERVICE)
    app = create_chassis_app(SERVICE, settings, title="Cart service")
    platform = app.extensions["flotilla.platform"]
    catalog = ServiceClient(app)
    store = CartStore(
        aws.client("dynamodb", platform),
        physical_name(platform.env, SERVICE, settings.table),
        ttl_attribute(settings.table),
        settings.ttl_days * 86400,
    )

    def catalog_ready() -> None:
        answer = catalog.get(settings.catalog_upstream, "/livez", timeout=1.0)
        if answer.status_code != 200:
            raise RuntimeError(f"catalog /livez answered {answer.status_code}")

    Health.of(app).add_check("dynamodb", store.check, critical=True)
    Health.of(app).add_check("catalog", catalog_ready, critical=False)

    carts = _Carts(settings, store, catalog)

    @app.get("/cart", tags=[CART], responses={200: api.Cart})
    @require_principal(SCOPE)
    def get_cart() -> Response:
        """The caller's cart (empty, version 0, when they have none). Works while the catalog is down."""
        return _cart_response(store.get(current_principal(platform_secret()).subject))

    @app.post("/cart/items", tags=[CART], responses={200: api.Cart, 400: None, 409: None})
    @require_principal(SCOPE)
    def add_item(body: api.AddItem) -> Response:
        """Add a quantity of a product (on top of what the cart holds)."""
        return carts.change(
            lambda cart: carts.line_for(cart, body.sku, _held(cart, body.sku) + body.quantity)
        )

    @app.put("/cart/items/<sku>", tags=[CART], responses={200: api.Cart, 400: None, 409: None})
    @require_principal(SCOPE)
    def set_item(path: api.SkuPath, body: api.SetQuantity) -> Response:
        """Hold exactly this quantity of a product (adds the line if missing)."""
        return carts.change(lambda cart: carts.line_for(cart, path.sku, body.quantity))

    @app.delete("/cart/items/<sku>", tags=[CART], responses={200: api.Cart, 400: None, 409: None})
    @require_principal(SCOPE)
    def remove_item(path: api.SkuPath) -> Response:
        """Remove a product from the cart; 404 when the cart does not hold it."""

        def without(cart: StoredCart) -> dict[str, LineItem]:
            if path.sku not in cart.items:
                raise ProblemError(404, "Not Found", f"the cart holds no {path.sku}")
            return {sku: line for sku, line in cart.items.items() if sku != path.sku}

        return carts.change(without)

    @app.delete("/cart", tags=[CART], responses={200: api.Cart, 400: None, 409: None})
    @require_principal(SCOPE)
    def clear_cart() -> Response:
        """Empty the cart (a new, empty version: versions are never reused)."""
        return carts.change(lambda cart: {})

    return app


class _Carts:
    """The rules of changing a cart: catalog checks, limits, and the conditional write loop."""

    def __init__(self, settings: Settings, store: CartStore, catalog: ServiceClient) -> None:
        self.settings = settings
        self.store = store
        self.catalog = catalog

    def product(self, sku: str) -> dict[str, Any]:
        """The catalog's product, or the problem to answer: unknown SKU is 422 (the request names
        something that does not exist), a catalog failure 502, an open circuit 503 + Retry-After.

        Remembered for the request: a write retried after a version conflict asks the catalog once.
        """
        fetched: dict[str, dict[str, Any]] = g.setdefault("catalog_products", {})
        if sku not in fetched:
            fetched[sku] = self._fetch(sku)
        return fetched[sku]

    def _fetch(self, sku: str) -> dict[str, Any]:
        answer = self.catalog.get(self.settings.catalog_upstream, f"/products/{quote(sku, safe='')}")
        if answer.status_code == 404:
            raise ProblemError(
                422,
                "Unknown product",
                f"no product {sku} in the catalog",
                type="urn:flotilla:problem:unknown-sku",
            )
        if answer.status_code != 200:
            raise ProblemError(502, "Bad upstream response", f"catalog answered {answer.status_code}")
        found: dict[str, Any] = answer.json()
        return found

    def line_for(self, cart: StoredCart, sku: str, quantity: int) -> dict[str, LineItem]:
        """The cart's items with ``sku`` at ``quantity``, checked against the catalog."""
        if quantity > self.settings.max_quantity:
            raise ProblemError(
                422, "Quantity too large", f"at most {self.settings.max_quantity} of one product"
            )
        if sku not in cart.items and len(cart.items) >= self.settings.max_lines:
            raise ProblemError(422, "Cart full", f"a cart holds at most {self.settings.max_lines} products")
        found = self.product(sku)
        if quantity > found["stock"]:
            raise ProblemError(
                409,
                "Insufficient stock",
                f"{found['stock']} of {sku} in stock, {quantity} asked for",
                type="urn:flotilla:problem:insufficient-stock",
                available=found["stock"],
            )
        currencies = {line.currency for other, line in cart.items.items() if other != sku}
        if currencies and found["currency"] not in currencies:
            raise ProblemError(422, "Mixed currencies", f"the cart is in {currencies.pop()}")
        line = LineItem(quantity, found["name"], found["price_cents"], found["currency"])
        return cart.items | {sku: line}

    def change(self, edit: Callable[[StoredCart], dict[str, LineItem]]) -> Response:
        user = current_principal(platform_secret()).subject
        expected = _if_match()
        for _ in range(WRITE_ATTEMPTS):
            cart = self.store.get(user)
            if expected is not None and expected not in (cart.version, _ANY):
                raise _stale(cart.version)
            if expected == _ANY and cart.version == 0:
                raise _stale(cart.version)
            try:
                return _cart_response(self.store.save(cart, edit(cart)))
            except VersionConflict:
                if expected is not None:
                    raise _stale(self.store.get(user).version) from None
        raise _stale(self.store.get(user).version)


def _held(cart: StoredCart, sku: str) -> int:
    line = cart.items.get(sku)
    return line.quantity if line else 0


def _if_match() -> int | None:
    """The version the client says it is changing: ``If-Match: "3"`` (or ``W/"3"``, ``3``, ``*``)."""
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    value = raw.strip()
    if value == "*":
        return _ANY
    value = value.removeprefix("W/").strip('"')
    # ASCII digits only (str.isdigit also takes "²", which int() refuses), and no more of them than
    # a version can have: int() refuses over 4300 digits, and no cart is changed 10**18 times.
    if not (value.isascii() and value.isdigit()) or len(value) > MAX_VERSION_DIGITS:
        raise ProblemError(400, "Bad If-Match", 'send the ETag of the cart, e.g. If-Match: "3"')
    return int(value)


def _stale(current: int) -> ProblemError:
    return ProblemError(
        409,
        "Cart changed",
        f"the cart is at version {current}; read it again and retry",
        type="urn:flotilla:problem:stale-version",
        headers={"ETag": f'"{current}"'},
        current_version=current,
    )


def _cart_response(cart: StoredCart) -> Response:
    lines = [
        api.Line(
            sku=sku,
            name=line.name,
            quantity=line.quantity,
            unit_price_cents=line.unit_price_cents,
            line_total_cents=line.quantity * line.unit_price_cents,
            currency=line.currency,
        )
        for sku, line in sorted(cart.items.items())
    ]
    body = api.Cart(
        items=lines,
        total_cents=sum(line.line_total_cents for line in lines),
        currency=lines[0].currency if lines else None,
        version=cart.version,
        expires_at=(
            datetime.fromtimestamp(cart.expires_at, UTC).isoformat()
            if cart.expires_at and cart.items
            else None
        ),
    )
    response = jsonify(body.model_dump())
    response.headers["ETag"] = f'"{cart.version}"'
    return response
