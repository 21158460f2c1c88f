"""The current request id, kept in a context variable so logs and outgoing calls can find it."""

from __future__ import annotations

import random
import re
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-Id"

_WELL_FORMED = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
request_id_var: ContextVar[str | None] = ContextVar("flotilla_request_id", default=None)


def accept_request_id(incoming: str | None) -> str:
    """Keep a caller's id when it is safe to log and echo; otherwise mint a new one.

    Anything else (too long, spaces, control characters) could forge log lines or headers.
    """
    if incoming and _WELL_FORMED.fullmatch(incoming):
        return incoming
    # Unique, not secret: the random module (reseeded in each forked worker) is ~10x cheaper
    # than uuid4's os.urandom on the hot path.
    return f"{random.getrandbits(128):032x}"


def current_request_id() -> str | None:
    return request_id_var.get()
