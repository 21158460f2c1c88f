"""Settings of the cart service (``CART_*``)."""

from pydantic import Field

from flotilla.config import ServiceSettings


class Settings(ServiceSettings, env_prefix="CART_"):
    table: str = Field("carts", description="Logical name of the carts table in resources.yaml.")
    ttl_days: float = Field(30.0, gt=0, description="A cart untouched this long expires (DynamoDB TTL).")
    max_lines: int = Field(50, ge=1, le=500, description="Different products one cart may hold.")
    max_quantity: int = Field(99, ge=1, le=10_000, description="Largest quantity of one product.")
    catalog_upstream: str = Field("catalog", description="Logical name the catalog is discovered by.")
