"""Alembic environment of the catalog: the database comes from ``flotilla migrate catalog``."""

from flotilla.db import run_migrations
from services.catalog.models import Base

run_migrations(Base.metadata)
