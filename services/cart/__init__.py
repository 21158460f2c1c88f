"""cart: one cart per user in DynamoDB, items checked against the catalog, optimistic concurrency."""

from flotilla import Service
from services.cart.settings import Settings


def _create_app(settings: Settings):  # type: ignore[no-untyped-def]
    from services.cart.app import create_app

    return create_app(settings)


service = Service(name="cart", settings=Settings, create_app=_create_app, description=__doc__ or "")
