"""The body cap under real gunicorn, whatever the transfer encoding: a chunked body over the cap is
413 before the view runs (not cut at the cap and then a 422), one under it arrives whole."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support import serve

pytestmark = pytest.mark.slow

CAP = 1024


def chunked(body: bytes, size: int = 100) -> Iterator[bytes]:
    """A generator body: requests sends it with Transfer-Encoding: chunked and no Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_the_cap_holds_for_chunked_and_sized_bodies(tmp_path: Path) -> None:
    with serve("sample", tmp_path, env={"FLOTILLA_MAX_BODY_BYTES": str(CAP)}) as server:
        url = server.url + "/echo"
        headers = {"Content-Type": "application/json"}
        over = json.dumps({"text": "x" * 900, "pad": "y" * 400}).encode()
        under = json.dumps({"text": "z" * 900, "repeat": 1}).encode()
        assert len(over) > CAP > len(under)

        for body in (chunked(over), over):
            answer = requests.post(url, data=body, headers=headers, timeout=10)
            assert answer.status_code == 413, answer.text
            assert answer.headers["Content-Type"] == "application/problem+json"
            assert str(CAP) in answer.json()["detail"]

        answer = requests.post(url, data=chunked(under), headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"text": "z" * 900}
