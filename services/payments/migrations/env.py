"""Alembic environment of payments: the database comes from ``flotilla migrate payments``."""

from flotilla.db import run_migrations
from services.payments.models import Base

run_migrations(Base.metadata)
