"""HTTP API of the catalog: public reads (cached), admin-only writes (invalidate the cache)."""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Response, jsonify
from flask_openapi3.models.tag import Tag
from flask_openapi3.openapi import OpenAPI

from flotilla import create_app as create_chassis_app
from flotilla.cache import Cache
from flotilla.config import load_settings
from flotilla.db import Database
from flotilla.errors import ProblemError
from flotilla.principal import require_principal
from services.catalog import api, store
from services.catalog.settings import Settings

PRODUCTS = Tag(name="products")
CATEGORIES = Tag(name="categories")
ADMIN = "admin"

# Cache tags: every listing page carries PRODUCTS_TAG; one product's entry carries its own tag.
PRODUCTS_TAG = "products"
CATEGORIES_TAG = "categories"


def product_tag(sku: str) -> str:
    return f"product:{sku}"


def create_app(settings: Settings | None = None) -> OpenAPI:
    settings = settings or load_settings(Settings, service="catalog")
    app = create_chassis_app("catalog", settings, title="Catalog service")
    db = Database(settings, app)
    cache = Cache.from_settings(settings, prefix="catalog", app=app)
    _product_routes(app, settings, db, cache)
    _category_routes(app, db, cache)
    return app


def _created(body: dict[str, Any], location: str) -> tuple[Response, int, dict[str, str]]:
    return jsonify(body), 201, {"Location": location}


def _product_routes(app: OpenAPI, settings: Settings, db: Database, cache: Cache) -> None:

    @app.get("/products", tags=[PRODUCTS], responses={200: api.ProductPage, 400: None})
    def list_products(query: api.ProductQuery) -> dict[str, Any]:
        """Products in name order, a page at a time; filter by category, price and stock, search by name."""
        if query.min_price is not None and query.max_price is not None and query.min_price > query.max_price:
            raise ProblemError(400, "Bad filter", "min_price is above max_price")
        limit = min(query.limit or settings.default_page_size, settings.max_page_size)
        key = (
            "products:" + hashlib.sha256(query.model_dump_json().encode() + f":{limit}".encode()).hexdigest()
        )

        def load() -> dict[str, Any]:
            with db.session() as session:
                return store.list_products(session, query, limit)

        page: dict[str, Any] = cache.get_or_load(key, load, tags=[PRODUCTS_TAG])
        return page

    @app.get("/products/<sku>", tags=[PRODUCTS], responses={200: api.Product})
    def get_product(path: api.SkuPath) -> dict[str, Any]:
        """One product by SKU (404 when there is none)."""

        def load() -> dict[str, Any]:
            with db.session() as session:
                return store.product_json(store.get_product(session, path.sku))

        product: dict[str, Any] = cache.get_or_load(f"product:{path.sku}", load, tags=[product_tag(path.sku)])
        return product

    @app.post("/products", tags=[PRODUCTS], responses={201: api.Product, 409: None})
    @require_principal(ADMIN)
    def create_product(body: api.ProductIn) -> tuple[Response, int, dict[str, str]]:
        """Add a product (admin). 409 when the SKU exists, 422 when the category does not."""
        with db.session() as session:
            product = store.add_product(session, body.model_dump(exclude={"category"}), body.category)
            result = store.product_json(product)
        cache.invalidate_tags(PRODUCTS_TAG, product_tag(body.sku))
        return _created(result, f"/products/{body.sku}")

    @app.patch("/products/<sku>", tags=[PRODUCTS], responses={200: api.Product, 409: None})
    @require_principal(ADMIN)
    def update_product(path: api.SkuPath, body: api.ProductPatch) -> dict[str, Any]:
        """Change some fields of a product (admin)."""
        with db.session() as session:
            changes = body.model_dump(exclude_unset=True, exclude={"category"})
            product = store.update_product(session, path.sku, changes, body.category)
            result = store.product_json(product)
        cache.invalidate_tags(PRODUCTS_TAG, product_tag(path.sku))
        return result

    @app.delete("/products/<sku>", tags=[PRODUCTS], responses={204: None})
    @require_principal(ADMIN)
    def delete_product(path: api.SkuPath) -> tuple[str, int]:
        """Remove a product (admin)."""
        with db.session() as session:
            store.delete_product(session, path.sku)
        cache.invalidate_tags(PRODUCTS_TAG, product_tag(path.sku), CATEGORIES_TAG)
        return "", 204


def _category_routes(app: OpenAPI, db: Database, cache: Cache) -> None:

    @app.get("/categories", tags=[CATEGORIES], responses={200: api.CategoryList})
    def list_categories() -> dict[str, Any]:
        """Every category, with how many products it holds."""

        def load() -> dict[str, Any]:
            with db.session() as session:
                return store.list_categories(session)

        categories: dict[str, Any] = cache.get_or_load(
            "categories", load, tags=[CATEGORIES_TAG, PRODUCTS_TAG]
        )
        return categories

    @app.get("/categories/<slug>", tags=[CATEGORIES], responses={200: api.Category})
    def get_category(path: api.SlugPath) -> dict[str, Any]:
        """One category (where a created category's Location points)."""

        def load() -> dict[str, Any]:
            with db.session() as session:
                category = store.get_category(session, path.slug)
                return store.category_json(category, store.product_count(session, category))

        found: dict[str, Any] = cache.get_or_load(
            f"category:{path.slug}", load, tags=[CATEGORIES_TAG, PRODUCTS_TAG]
        )
        return found

    @app.post("/categories", tags=[CATEGORIES], responses={201: api.Category, 409: None})
    @require_principal(ADMIN)
    def create_category(body: api.CategoryIn) -> tuple[Response, int, dict[str, str]]:
        """Add a category (admin); 409 when the slug exists."""
        with db.session() as session:
            result = store.category_json(store.add_category(session, body.model_dump()), 0)
        cache.invalidate_tags(CATEGORIES_TAG)
        return _created(result, f"/categories/{body.slug}")

    @app.patch("/categories/<slug>", tags=[CATEGORIES], responses={200: api.Category})
    @require_principal(ADMIN)
    def update_category(path: api.SlugPath, body: api.CategoryPatch) -> dict[str, Any]:
        """Rename or re-describe a category (admin); the slug never changes."""
        with db.session() as session:
            category = store.update_category(session, path.slug, body.model_dump(exclude_unset=True))
            result = store.category_json(category, store.product_count(session, category))
        cache.invalidate_tags(CATEGORIES_TAG)
        return result

    @app.delete("/categories/<slug>", tags=[CATEGORIES], responses={204: None, 409: None})
    @require_principal(ADMIN)
    def delete_category(path: api.SlugPath) -> tuple[str, int]:
        """Remove an empty category (admin); 409 while it still holds products."""
        with db.session() as session:
            store.delete_category(session, path.slug)
        cache.invalidate_tags(CATEGORIES_TAG)
        return "", 204
