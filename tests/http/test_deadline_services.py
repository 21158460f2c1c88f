"""Deadline propagation across two real services (``flotilla serve`` processes on loopback)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests

from flotilla.http import DEADLINE_HEADER
from tests.support import Served, serve

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("relay-services")]


@pytest.fixture(scope="module")
def services(tmp_path_factory) -> Iterator[tuple[Served, Served]]:
    tmp = tmp_path_factory.mktemp("relay")
    with serve("tests.http.services:callee", tmp) as callee:
        static = json.dumps({"callee": callee.url})
        with serve("tests.http.services:caller", tmp, env={"FLOTILLA_DISCOVERY_STATIC": static}) as caller:
            yield caller, callee


def stats(callee: Served) -> dict[str, int]:
    return requests.get(f"{callee.url}/stats", timeout=5).json()


def test_the_callee_sees_what_is_left_of_the_callers_deadline(services):
    caller, _ = services
    answer = requests.get(f"{caller.url}/relay/budget", headers={DEADLINE_HEADER: "800"}, timeout=5).json()
    assert 0 < answer["callee"]["remaining"] <= answer["caller_remaining"] <= 0.8


def test_the_callee_gives_up_when_the_callers_deadline_passes(services):
    caller, callee = services
    before = stats(callee)
    response = requests.get(f"{caller.url}/relay/work", headers={DEADLINE_HEADER: "300"}, timeout=10)
    assert response.status_code == 504
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["title"] == "Deadline exceeded"
    give_up = time.monotonic() + 10
    while stats(callee)["gave_up"] == before["gave_up"] and time.monotonic() < give_up:
        time.sleep(0.05)
    after = stats(callee)
    assert after["gave_up"] == before["gave_up"] + 1
    assert after["completed"] == before["completed"]


def test_a_request_whose_deadline_has_passed_is_not_relayed(services):
    caller, callee = services
    before = stats(callee)
    response = requests.get(f"{caller.url}/relay/work", headers={DEADLINE_HEADER: "0"}, timeout=5)
    assert response.status_code == 504
    assert stats(callee)["started"] == before["started"]
