"""pytest plugin: session fixtures ``postgres_url``, ``redis_url`` and ``aws_endpoint``, and a header line
saying where each runs.

Register it in ``tests/conftest.py`` with ``pytest_plugins = ["tests.backends.plugin"]``. Each fixture
starts its backend on first use, once per session; under pytest-xdist every worker is its own session and
gets its own throwaway instance.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.backends.backends import (
    BACKENDS,
    MOTO,
    POSTGRES,
    REDIS,
    Backend,
    Running,
    local_program,
    plan,
    start,
)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """One line per backend: the container image it will use, or why it runs as a local process."""
    lines = []
    for name, backend in BACKENDS.items():
        try:
            found, why = plan(backend)
        except RuntimeError as err:
            lines.append(f"backend {name}: {err}")
            continue
        where = f"container {why}" if found is not None else f"{local_program(backend)} ({why})"
        lines.append(f"backend {name}: {where}")
    return lines


def _serve(backend: Backend) -> Iterator[Running]:
    with start(backend) as running:
        yield running


@pytest.fixture(scope="session")
def postgres_backend() -> Iterator[Running]:
    yield from _serve(POSTGRES)


@pytest.fixture(scope="session")
def redis_backend() -> Iterator[Running]:
    yield from _serve(REDIS)


@pytest.fixture(scope="session")
def aws_backend() -> Iterator[Running]:
    yield from _serve(MOTO)


@pytest.fixture(scope="session")
def postgres_url(postgres_backend: Running) -> str:
    """``postgresql://flotilla@127.0.0.1:<port>/postgres`` of a throwaway server (trust auth)."""
    return postgres_backend.url


@pytest.fixture(scope="session")
def redis_url(redis_backend: Running) -> str:
    """``redis://127.0.0.1:<port>/0`` of a throwaway server that keeps nothing on disk."""
    return redis_backend.url


@pytest.fixture(scope="session")
def aws_endpoint(aws_backend: Running) -> str:
    """``http://127.0.0.1:<port>`` of a moto server: pass it as boto3's ``endpoint_url``."""
    return aws_backend.url
