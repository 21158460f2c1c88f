"""Settings of the catalog service (``CATALOG_*``): its database, its cache and page sizes."""

from pydantic import Field

from flotilla.cache import CacheSettings
from flotilla.config import ServiceSettings
from flotilla.db import DatabaseSettings


class Settings(ServiceSettings, DatabaseSettings, CacheSettings, env_prefix="CATALOG_"):
    default_page_size: int = Field(20, ge=1, le=100, description="Products per page when none is asked for.")
    max_page_size: int = Field(100, ge=1, le=500, description="Largest page a client may ask for.")
