"""Two chassis services for the deadline test, served by real ``flotilla serve`` processes.

``caller`` relays to ``callee`` through ``ServiceClient``; ``callee`` works in small steps, checking
the deadline between them, and counts how often it finished and how often it gave up.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from flotilla import Service, create_app
from flotilla.config import ServiceSettings
from flotilla.http import DeadlineExceeded, ServiceClient, check_deadline, remaining_budget


class Settings(ServiceSettings, env_prefix="RELAY_"):
    pass


_lock = threading.Lock()
_stats = {"started": 0, "completed": 0, "gave_up": 0}


def _count(name: str) -> None:
    with _lock:
        _stats[name] += 1


def create_callee(settings: Settings) -> Any:
    app = create_app("callee", settings)  # create_app installs Deadlines

    @app.get("/budget")
    def budget() -> dict[str, Any]:
        return {"remaining": remaining_budget()}

    @app.get("/work")
    def work() -> dict[str, Any]:
        _count("started")
        try:
            for _ in range(100):
                time.sleep(0.02)
                check_deadline()
        except DeadlineExceeded:
            _count("gave_up")
            raise
        _count("completed")
        return {"done": True}

    @app.get("/stats")
    def stats() -> dict[str, int]:
        with _lock:
            return dict(_stats)

    return app


def create_caller(settings: Settings) -> Any:
    app = create_app("caller", settings)
    client = ServiceClient(app)

    def relay(path: str) -> dict[str, Any]:
        mine = remaining_budget()
        answer = client.get("callee", path)
        if answer.status_code == 504:
            # The callee ran out of the same deadline a moment before this call timed out: the
            # race is normal, and the answer is the same either way.
            raise DeadlineExceeded("callee", "the callee gave up: the deadline passed")
        return {"caller_remaining": mine, "status": answer.status_code, "callee": answer.json()}

    @app.get("/relay/budget")
    def relay_budget() -> dict[str, Any]:
        return relay("/budget")

    @app.get("/relay/work")
    def relay_work() -> dict[str, Any]:
        return relay("/work")

    return app


callee = Service(name="callee", settings=Settings, create_app=create_callee)
caller = Service(name="caller", settings=Settings, create_app=create_caller)
