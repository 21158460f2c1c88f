from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.data.support import fresh_database


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    with fresh_database(postgres_url) as url:
        yield url
