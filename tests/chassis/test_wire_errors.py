"""What gunicorn refuses before the app runs is still a problem document, under real gunicorn."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.support import Served, serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve("sample", tmp_path_factory.mktemp("wire")) as served:
        yield served


def exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(raw)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /hello/" + b"a" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
        (b"GET /hello/a HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
        (
            b"GET /hello/a HTTP/1.1\r\nHost: t\r\n"
            + b"".join(b"X-%d: v\r\n" % i for i in range(120))
            + b"\r\n",
            431,
        ),
        (b"GET /hello/a HTTP/9.9\r\nHost: t\r\n\r\n", 400),
        (b"GET /hello/a HTTP/1.1\r\nHost: t\r\nBad Header: v\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\n", 400),
    ],
    ids=[
        "request-line-too-long",
        "header-too-large",
        "too-many-headers",
        "bad-version",
        "bad-header-name",
        "bad-content-length",
    ],
)
def test_refused_requests_get_problem_json(server: Served, raw: bytes, status: int) -> None:
    got, headers, body = exchange(server.port, raw)
    assert got == status
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem = json.loads(body)
    assert problem["status"] == status
    assert problem["type"] == "about:blank"
    assert problem["title"]
    assert int(headers["content-length"]) == len(body)
