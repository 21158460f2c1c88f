"""Worker recycling is opt-in: by default a worker serves for the life of the pod."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.support import serve

pytestmark = pytest.mark.slow


def worker_pids(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def served_by(url: str, count: int) -> None:
    with requests.Session() as session:
        for _ in range(count):
            assert session.get(url, timeout=5).status_code == 200


def wait_for_workers(master: int, count: int) -> set[int]:
    deadline = time.monotonic() + 10
    while len(pids := worker_pids(master)) != count:
        assert time.monotonic() < deadline, f"expected {count} workers, have {pids}"
        time.sleep(0.05)
    return pids


def test_workers_are_not_recycled_by_default(tmp_path: Path) -> None:
    with serve("sample", tmp_path) as server:
        before = wait_for_workers(server.proc.pid, 1)
        served_by(server.url + "/hello/a", 2300)  # past the 2,000 (+200 jitter) once the default
        assert worker_pids(server.proc.pid) == before


def test_recycling_when_asked_replaces_the_worker(tmp_path: Path) -> None:
    env = {"FLOTILLA_MAX_REQUESTS": "50", "FLOTILLA_MAX_REQUESTS_JITTER": "0"}
    with serve("sample", tmp_path, env=env) as server:
        before = wait_for_workers(server.proc.pid, 1)
        served_by(server.url + "/hello/a", 120)
        after = wait_for_workers(server.proc.pid, 1)
        assert after.isdisjoint(before)
