"""/livez and /readyz: concurrent checks with their own timeouts, degraded vs failed, drain."""

from __future__ import annotations

import threading
import time
from typing import Any

from flotilla.health import DrainFlag, Health


def test_livez_is_always_ok(client: Any) -> None:
    assert client.get("/livez").json == {"status": "ok"}


def test_readyz_runs_checks_concurrently(app: Any, client: Any) -> None:
    # Each check waits for the other at a barrier: run one after the other, both would time out.
    barrier = threading.Barrier(2, timeout=5)
    Health.of(app).add_check("db", barrier.wait)
    Health.of(app).add_check("cache", barrier.wait)
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json["status"] == "ok"
    assert {name: c["state"] for name, c in answer.json["checks"].items()} == {"db": "ok", "cache": "ok"}
    assert all(isinstance(c["latency_ms"], float) for c in answer.json["checks"].values())


def test_a_hung_check_times_out_on_its_own(app: Any, client: Any) -> None:
    release = threading.Event()
    Health.of(app).add_check("hung", lambda: release.wait(10), timeout=0.2)
    Health.of(app).add_check("fine", lambda: None)
    try:
        answer = client.get("/readyz")
    finally:
        release.set()
    assert answer.status_code == 503
    assert answer.json["status"] == "failed"
    assert answer.json["checks"]["hung"]["state"] == "timeout"
    assert answer.json["checks"]["fine"]["state"] == "ok"


def test_failing_optional_check_degrades_but_stays_ready(app: Any, client: Any) -> None:
    def cache_down() -> None:
        raise ConnectionError("redis unreachable")

    Health.of(app).add_check("cache", cache_down, critical=False)
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json["status"] == "degraded"
    assert answer.json["checks"]["cache"] == {
        "critical": False,
        "state": "degraded",
        "latency_ms": answer.json["checks"]["cache"]["latency_ms"],
        "error": "ConnectionError",
    }


def test_failing_critical_check_is_503(app: Any, client: Any) -> None:
    def db_down() -> None:
        raise OSError("connection refused")

    Health.of(app).add_check("db", db_down)
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json["checks"]["db"]["state"] == "failed"


def test_draining_turns_readyz_503_but_not_livez() -> None:
    from flask import Flask

    app = Flask("drain")
    flag = DrainFlag()
    Health(app, drain_flag=flag)
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    flag.set()
    assert client.get("/readyz").status_code == 503
    assert client.get("/readyz").json["status"] == "draining"
    assert client.get("/livez").status_code == 200


def test_drain_flag_shared_across_fork_reaches_child() -> None:
    import os

    flag = DrainFlag()
    flag.share_across_fork()
    pid = os.fork()
    if pid == 0:  # child: wait for the parent's flip, report through the exit code
        deadline = time.monotonic() + 5
        while not flag.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        os._exit(0 if flag.is_set() else 1)
    flag.set()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
