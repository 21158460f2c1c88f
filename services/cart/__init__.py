"""cart: one cart per user in DynamoDB, items checked against the catalog, optimistic concurrency."""

from flotilla import Service
from flotilla.service import lazy
from services.cart.settings import Settings


def _preflight(platform: object, settings: Settings) -> None:
    """Stop start-up with one line (exit 2) when CART_TABLE names no table with a TTL in resources.yaml."""
    from flotilla.config import ConfigError
    from services.cart.store import ttl_attribute

    try:
        ttl_attribute(settings.table)
    except LookupError as err:
        raise ConfigError(f"CART_TABLE: {err}") from None


service = Service(
    name="cart",
    settings=Settings,
    create_app=lazy("services.cart.app:create_app"),
    description=__doc__ or "",
    preflight=_preflight,
)
