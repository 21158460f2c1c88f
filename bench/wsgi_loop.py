"""``python -m bench.wsgi_loop VARIANT N``: call one app's ``GET /ping`` N times in-process (no HTTP).

Run under valgrind's callgrind by ``bench.instructions``: the difference between two call counts is
the instructions the variant spends per request, a number that does not move with machine load.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def app_for(variant: str) -> Any:
    if variant == "bare":
        from bench.apps import bare

        return bare()
    if variant == "stock":
        from bench.apps import stock

        return stock()
    from services.sample.app import create_app

    return create_app()


def main(variant: str, count: int) -> None:
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the access lines' cost counts, their text doesn't
    app = app_for(variant)
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/ping",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": None,
        "HTTP_HOST": "bench",
    }
    for _ in range(count):
        body = app(dict(environ), lambda status, headers, exc_info=None: None)
        for _chunk in body:
            pass
        getattr(body, "close", lambda: None)()
    from opentelemetry import trace

    flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if flush:
        flush()  # the export thread's work belongs to the requests too


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
