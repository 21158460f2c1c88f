"""Throwaway databases on the session's Postgres server, and a port nothing listens on.

Every test that writes gets a database of its own (``CREATE DATABASE`` takes tens of milliseconds),
so tests never see each other's rows, in any order and under pytest-xdist.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


@contextmanager
def fresh_database(postgres_url: str) -> Iterator[str]:
    """A new, empty database; yields its SQLAlchemy URL (``postgresql+psycopg://``) and drops it after."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_url.rpartition("/")
    try:
        yield base.replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def closed_port() -> int:
    """A loopback port with no listener (bound then released): connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_db(redis_url: str, number: int) -> str:
    """The same server, another logical database, so suites sharing the server don't share keys."""
    base, _, _ = redis_url.rpartition("/")
    return f"{base}/{number}"
