"""``DatabaseSettings``: the database knobs a service mixes into its own settings class."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings


class DatabaseSettings(BaseSettings):
    """Mix into a service's settings: ``class Settings(ServiceSettings, DatabaseSettings, env_prefix="CATALOG_")``.

    The fields are flat (``CATALOG_DATABASE_URL``, not a nested model) so each one can also be
    overlaid from SSM (``/flotilla/<env>/catalog/database-url``) like any other setting. The URL
    is a secret because it usually carries the password.
    """

    database_url: SecretStr = Field(
        description=(
            "SQLAlchemy URL: postgresql://user:pass@host:5432/db (psycopg 3 is used), or "
            "sqlite:///.flotilla/<service>.db for the local stack without Postgres."
        ),
    )
    database_pool_size: int = Field(5, ge=1, le=100, description="Connections kept open per process.")
    database_max_overflow: int = Field(5, ge=0, le=100, description="Extra connections under bursts.")
    database_pool_timeout_seconds: float = Field(
        5.0, gt=0, description="Wait for a free pooled connection before failing the request."
    )
    database_pool_recycle_seconds: int = Field(
        1800, ge=0, description="Replace connections older than this (RDS proxies and NATs drop idle ones)."
    )
    database_pool_pre_ping: bool = Field(
        True, description="Test a pooled connection before use, so a failover costs one retry, not a 500."
    )
    database_statement_timeout_ms: int = Field(
        5000, ge=0, description="Postgres statement_timeout per connection (0 = none)."
    )
    database_connect_timeout_seconds: int = Field(3, ge=1, description="TCP/auth connect timeout.")

    @field_validator("database_url")
    @classmethod
    def _parseable(cls, value: SecretStr) -> SecretStr:
        """Refuse a URL SQLAlchemy can't parse at start-up, not in every worker's first request."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(value.get_secret_value())
        except ArgumentError:
            raise ValueError(
                "is not a database URL (postgresql://user:pass@host:5432/db or sqlite:///path)"
            ) from None
        return value
