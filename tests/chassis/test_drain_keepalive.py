"""Kept-alive connections through a drain: told to close while draining, closed cleanly after.

A raw socket client, because HTTP libraries hide what matters here: whether the response says
``Connection: close``, and whether the server ends the connection with a FIN (``recv`` returns
``b""``) or a reset (``ConnectionResetError``). Load balancers keep connections open and do not
read ``/readyz``; they must be moved off a stopping pod by the connection itself.
"""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path

import pytest

from tests.support import serve

pytestmark = pytest.mark.slow

REQUEST = b"GET /hello/drain HTTP/1.1\r\nHost: test\r\n\r\n"


def read_response(conn: socket.socket) -> tuple[int, dict[str, str]]:
    """Read one response with a Content-Length body; status and lower-cased headers."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = conn.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return int(status_line.split()[1]), headers


def closed_cleanly(conn: socket.socket) -> bool:
    """True on FIN; a reset raises, a hang times out (both fail the test with their own error)."""
    return conn.recv(65536) == b""


def listener_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_kept_alive_connections_are_closed_not_reset_when_the_server_stops(tmp_path: Path) -> None:
    env = {"FLOTILLA_DRAIN_SECONDS": "1.5", "FLOTILLA_GRACEFUL_TIMEOUT": "20"}
    with serve("sample", tmp_path, env=env) as server:
        busy = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        for conn in (busy, idle):
            conn.sendall(REQUEST)
            status, headers = read_response(conn)
            assert status == 200
            assert headers.get("connection", "").lower() != "close"

        server.terminate()
        time.sleep(0.3)  # inside the drain: still serving, /readyz 503

        # A request on a kept-alive connection during the drain is answered, and the answer tells
        # the client to take its next request elsewhere.
        busy.sendall(REQUEST)
        status, headers = read_response(busy)
        assert status == 200
        assert headers["connection"].lower() == "close"
        assert closed_cleanly(busy)

        # An idle kept-alive connection is closed by the server with a FIN within the drain, so
        # the client's next request opens a new connection (to a pod still serving) instead of
        # meeting a listener that is gone.
        assert closed_cleanly(idle)

        deadline = time.monotonic() + 10
        while not listener_closed(server.port):
            assert time.monotonic() < deadline, "the listener never closed"
            time.sleep(0.1)
        assert server.wait(timeout=25) == 0


def peer_closed(conn: socket.socket) -> bool:
    """Whether a FIN is waiting: what an HTTP client checks before it reuses a pooled connection."""
    readable, _, _ = select.select([conn], [], [], 0)
    return bool(readable) and conn.recv(1, socket.MSG_PEEK) == b""


def test_requests_across_the_end_of_the_drain_get_an_answer_or_a_clean_close(tmp_path: Path) -> None:
    """A client reusing kept-alive connections as the drain ends gets, on each, a response with
    ``Connection: close`` or a FIN it can see before sending: within seconds, never a hang to the
    grace period's end followed by a reset."""
    env = {"FLOTILLA_DRAIN_SECONDS": "1", "FLOTILLA_GRACEFUL_TIMEOUT": "20"}
    with serve("sample", tmp_path, env=env) as server:
        conns = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(6)]
        for conn in conns:
            conn.sendall(REQUEST)
            assert read_response(conn)[0] == 200
        server.terminate()
        start = time.monotonic()
        outcomes = []
        # One connection every quarter second, from inside the drain to past its end.
        for index, conn in enumerate(conns):
            time.sleep(max(0.0, start + 0.1 + 0.25 * index - time.monotonic()))
            if peer_closed(conn):
                outcomes.append("closed")
                continue
            conn.sendall(REQUEST)
            status, headers = read_response(conn)
            assert (status, headers["connection"].lower()) == (200, "close")
            # Left open on purpose: a client slow to close holds the worker in gunicorn's graceful
            # close, and requests that arrive on other connections meanwhile must still be served.
            assert closed_cleanly(conn)
            outcomes.append("answered")
        assert time.monotonic() - start < 8
        assert outcomes[0] == "answered", "the drain had only just begun"
        assert outcomes[-1] == "closed", "idle connections should be closed by the end of the drain"
        assert server.wait(timeout=25) == 0
