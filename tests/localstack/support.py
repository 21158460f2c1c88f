"""Running ``flotilla up`` as a subprocess the way ``make run`` does, in a temp state dir on free ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support import ROOT


class Stack:
    """A ``flotilla up`` process, its output file and, once ready, what it wrote to ``stack.json``."""

    def __init__(self, state_dir: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.state_dir = state_dir
        self.output = state_dir.parent / f"{state_dir.name}-up.out"
        state_dir.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
        full_env.pop("FORCE_COLOR", None)
        with self.output.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "flotilla.cli",
                    "up",
                    "--state-dir",
                    str(state_dir),
                    "--any-ports",
                    *args,
                ],
                cwd=ROOT,
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.info: dict[str, Any] = {}

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        stack_file = self.state_dir / "stack.json"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"flotilla up exited with {self.proc.returncode}:\n{self.text()[-4000:]}"
                )
            if stack_file.exists():
                self.info = json.loads(stack_file.read_text())
                return self.info
            time.sleep(0.1)
        raise AssertionError(f"flotilla up not ready after {timeout}s:\n{self.text()[-4000:]}")

    def recorded_pids(self) -> list[int]:
        return [int(p.read_text().split()[0]) for p in (self.state_dir / "pids").glob("*.pid")]

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def logs(self, name: str) -> list[dict[str, Any]]:
        """A service's JSON log lines from ``<state>/logs/<name>.log`` (other lines skipped)."""
        lines = []
        for line in (self.state_dir / "logs" / f"{name}.log").read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    continue
        return lines


def processes_using(state_dir: Path) -> list[int]:
    """Live processes whose command line or environment names ``state_dir``: what the stack started."""
    needle = str(state_dir).encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[0] == "Z" or int(proc.name) == os.getpid():
                continue
            if needle in (proc / "cmdline").read_bytes() or needle in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except (OSError, IndexError):
            continue
    return found


def wait_no_processes(state_dir: Path, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := processes_using(state_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left
