"""Process helpers for benchmarks: CPU time of a process tree from /proc, waiting for a server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

TICKS = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its descendants (gunicorn master and workers): utime + stime of the
    live ones plus cutime + cstime, what the workers a master has already reaped had used (recycled
    workers' CPU would otherwise vanish from the count)."""
    total = 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15]) / TICKS
        stack += _children(current)
    return total


def serve_command(service: str, port: int, workers: int) -> list[str]:
    """``flotilla serve`` for a benchmark: this interpreter, loopback, a fixed worker count."""
    return [
        sys.executable,
        "-m",
        "flotilla.cli",
        "serve",
        service,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
    ]


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)
