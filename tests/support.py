"""Helpers for tests that run real processes: free ports, a served service, its JSON logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
FLOTILLA = [sys.executable, "-m", "flotilla.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, timeout: float = 20.0, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


class Served:
    """A `flotilla serve` process and what it wrote to stdout."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"

    def logs(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log_path.read_text().splitlines():
            if line.strip():
                lines.append(json.loads(line))
        return lines

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout=timeout)


@contextmanager
def serve(
    service: str, tmp_path: Path, *, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[Served]:
    port = free_port()
    log_path = tmp_path / f"{service}-{port}.log"
    full_env = {
        **os.environ,
        "FLOTILLA_TRACE_FILE": str(tmp_path / "traces.jsonl"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / f"metrics-{port}"),
        **(env or {}),
    }
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [*FLOTILLA, "serve", service, "--bind", f"127.0.0.1:{port}", "--workers", str(workers)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=ROOT,
            start_new_session=True,  # so cleanup can kill workers too, never orphan them
        )
    served = Served(proc, port, log_path)
    try:
        wait_for(served.url + "/livez", proc=proc)
        yield served
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
