"""gunicorn's gthread worker, taught two things it cannot be configured to do.

1. **Draining moves clients off by the connection itself.** Load balancers and kept-alive clients
   never read ``/readyz``: they leave a pod when its connections close. While the master drains
   (the shared flag in :mod:`flotilla.health`), every response says ``Connection: close`` and idle
   kept-alive connections are closed with a FIN, so by the time gunicorn closes its listeners no
   client is left holding a connection that would be reset or that nobody reads.
2. **Requests gunicorn refuses itself are problem+json.** A request line over the limit (414), a
   header block too large (431) or a malformed request (400) never reach the app, and gunicorn
   writes an HTML page for them. It has no hook for that body, so the worker swaps the one
   function that writes it, keeping gunicorn's choice of status, its logging and its access line.
"""

from __future__ import annotations

import json
import select
import time
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from flotilla.errors import PROBLEM_JSON
from flotilla.health import drain


def write_problem(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """Stands in for ``gunicorn.util.write_error``: the same answer as a problem document."""
    body: dict[str, Any] = {"type": "about:blank", "title": reason, "status": status_int}
    if mesg:
        body["detail"] = mesg
    payload = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_JSON}\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + payload)


class DrainingThreadWorker(ThreadWorker):  # type: ignore[misc]
    """The gthread worker every Flotilla service runs (``worker_class`` in the shared config)."""

    _idle_closed = False

    def init_process(self) -> None:
        util.write_error = write_problem
        super().init_process()

    def notify(self) -> None:
        # Called on every pass of the worker's loop (at least once a second): the place to notice
        # that the master started draining. Expiring the idle connections now lets the loop's own
        # keep-alive sweep close them (each is idle, so the close is a plain FIN, nothing unread).
        super().notify()
        if not self._idle_closed and drain.is_set():
            self._idle_closed = True
            now = time.monotonic()
            for conn in self.keepalived_conns:
                conn.timeout = min(conn.timeout, now)

    def murder_keepalived(self, force: bool = False) -> None:
        # gunicorn closes an expired kept-alive connection without looking at it; if a request
        # arrived since the last poll (the loop can be held up, by a graceful close for one), the
        # close discards unread bytes and the kernel answers with a reset. Serve those instead.
        if not force:
            now = time.monotonic()
            expired = [conn for conn in self.keepalived_conns if conn.timeout <= now]
            if expired:
                readable, _, _ = select.select([conn.sock for conn in expired], [], [], 0)
                for conn in expired:
                    if conn.sock in readable:
                        self.on_client_socket_readable(conn, conn.sock)
        super().murder_keepalived(force)

    def handle_request(self, req: Any, conn: Any) -> bool:
        if drain.is_set():
            req.must_close = True  # gunicorn then answers "Connection: close" and closes after
        return bool(super().handle_request(req, conn))
