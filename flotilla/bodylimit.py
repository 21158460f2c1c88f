"""The request-body cap, for every transfer encoding, enforced before the view runs.

Flask's ``MAX_CONTENT_LENGTH`` checks a declared ``Content-Length`` only when the view reads the body,
and a chunked body (no length) was cut at the cap instead of refused: the view then saw a truncated
body (a gateway forwarded it, a JSON view answered 422). ``BodyLimit`` answers 413 problem+json up
front: at once for a declared length over the cap, and for a chunked body after reading at most
cap + 1 bytes of it, which it then hands to the view as an ordinary sized body.
"""

from __future__ import annotations

import io

from flask import Flask, request

from flotilla.errors import ProblemError

_READ = 64 * 1024


class BodyLimit:
    """Flask extension: bodies over ``max_bytes`` are 413 before any view reads them."""

    def __init__(self, app: Flask | None = None, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.config["MAX_CONTENT_LENGTH"] = self.max_bytes
        app.extensions["flotilla.bodylimit"] = self
        app.before_request_funcs.setdefault(None, []).insert(0, self._check)

    def _too_large(self) -> ProblemError:
        return ProblemError(413, "Payload Too Large", f"the request body is over {self.max_bytes} bytes")

    def _check(self) -> None:
        environ = request.environ
        length = request.content_length
        if length is not None:
            if length > self.max_bytes:
                raise self._too_large()
            return
        if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            return
        stream = environ["wsgi.input"]
        body = bytearray()
        while len(body) <= self.max_bytes:
            chunk = stream.read(min(_READ, self.max_bytes + 1 - len(body)))
            if not chunk:
                break
            body += chunk
        if len(body) > self.max_bytes:
            raise self._too_large()
        environ["wsgi.input"] = io.BytesIO(bytes(body))
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
