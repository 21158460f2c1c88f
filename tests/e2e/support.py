"""The store as ``make run`` starts it, for a test module: temp state dir, free ports, clean stop."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.localstack.support import Stack, wait_no_processes
from tests.support import ROOT

STORE = ("gateway", "catalog", "cart")


@contextmanager
def running_store(tmp_path_factory: pytest.TempPathFactory, name: str = "store") -> Iterator[Stack]:
    missing = [service for service in STORE if not (ROOT / "services" / service / "__init__.py").exists()]
    if missing:
        pytest.skip(f"store services not in this tree yet: {', '.join(missing)}")
    state = tmp_path_factory.mktemp(name) / "state"
    stack = Stack(state, [arg for service in STORE for arg in ("--service", service)])
    try:
        stack.wait_ready(timeout=90)
        yield stack
    finally:
        code = stack.stop()
        left = wait_no_processes(state)
        if code != 0 or left:
            stack.kill()
        assert code == 0, stack.text()[-3000:]
        assert left == []
