"""Run a set of child processes as one unit: prefixed output, start-up checks, clean stop, no orphans.

Why ours and not honcho (or foreman-style tools): the local stack starts in stages (backends, then
one-shot tasks such as migrations, then services, each stage waiting on health checks), must say
which process failed and quote its last lines, and must leave no process behind even when the
supervisor itself is killed with SIGKILL. honcho starts everything at once through a shell and
knows nothing of readiness or parent death; what we need fits in this module.

How orphans are prevented:

- every child starts in its own session (so its process group is its pid); stopping signals the
  whole group, which reaches gunicorn's workers and Postgres' backends too;
- every child asks the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), so a
  supervisor killed without a chance to clean up still takes its children with it. The kernel ties
  that signal to the *thread* that forked the child, so children must be started from a thread that
  lives as long as the supervisor (the main thread); grandchildren (gunicorn workers, Postgres
  backends) notice their parent's death themselves and exit;
- each child's pid and start time are written to ``<pid_dir>/<name>.pid`` and removed when it is
  reaped. A watchdog process (``flotilla_dev.localstack.watchdog``) kills every recorded group, workers
  included, the moment the supervisor is gone however it died; the next run does the same for
  anything still left (:func:`kill_recorded`). Matching on start times means an unrelated process
  that reused a pid is never hit.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, TextIO

TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1
_COLOURS = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")
_RESET = "\033[0m"


@dataclass(frozen=True)
class ProcessSpec:
    """One process to run: what, with which environment, as whom, and how it wants to be stopped.

    ``env`` is the complete environment (nothing is inherited implicitly). ``account`` is a
    ``(uid, gid)`` to switch to before ``exec`` (Postgres refuses to run as root). ``stop_signal`` is
    sent to the process group first (Postgres wants SIGINT: "fast" shutdown; SIGTERM waits for
    every client to leave). ``stop_phase``: lower phases are stopped, and waited for, first, so the
    services let go of their databases before the databases stop.
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    account: tuple[int, int] | None = None
    stop_signal: int = signal.SIGTERM
    stop_phase: int = 0


class StackError(RuntimeError):
    """Start-up cannot go on; the message is for a person and may span lines (a log tail)."""


class ProcessFailed(StackError):
    """A child exited when it should not have (or a one-shot task exited non-zero)."""

    def __init__(self, child: Child, when: str) -> None:
        self.child = child
        tail = "\n".join(f"    {line}" for line in child.tail(15)) or "    (no output)"
        super().__init__(
            f"{child.name} exited with code {child.returncode} {when}; its last lines "
            f"(all of them in {child.log_path}):\n{tail}"
        )


class Interrupted(StackError):
    """A stop was asked for (Ctrl-C, SIGTERM) while starting."""


class Child:
    """A started process, the thread copying its output, and the last lines it wrote."""

    def __init__(
        self, spec: ProcessSpec, popen: subprocess.Popen[bytes], log_path: Path, is_task: bool = False
    ) -> None:
        self.spec = spec
        self.popen = popen
        self.log_path = log_path
        self.start_time = start_time(popen.pid)
        self.is_task = is_task
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._pump: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = TAIL_LINES) -> list[str]:
        """The last ``lines`` lines of output (what a failure report quotes)."""
        return list(self._tail)[-lines:]

    def _remember(self, line: str) -> None:
        self._tail.append(line)


class Supervisor:
    """Starts children, copies their output to the console and to per-process log files, stops them.

    Output lines are written to ``console`` behind a coloured, aligned ``name |`` prefix (the line
    itself is untouched, so JSON log lines stay parseable after the prefix) and, without the prefix,
    to ``<log_dir>/<name>.log`` (truncated when a process of that name starts).
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        console: TextIO | None = None,
        colour: bool | None = None,
        name_width: int = 10,
        pid_dir: Path | None = None,
        grace_seconds: float = 10.0,
    ) -> None:
        self.log_dir = log_dir
        self.console = console or sys.stdout
        self.colour = _wants_colour(self.console) if colour is None else colour
        self.name_width = name_width
        self.pid_dir = pid_dir
        self.grace_seconds = grace_seconds
        self.children: list[Child] = []
        self.stop_requested = threading.Event()
        self._console_lock = threading.Lock()
        self._colours: dict[str, str] = {}
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._watchdog_pipe: int | None = None
        log_dir.mkdir(parents=True, exist_ok=True)
        if pid_dir is not None:
            pid_dir.mkdir(parents=True, exist_ok=True)

    # --- output -------------------------------------------------------------------------------

    def prefix(self, name: str) -> str:
        """``name |`` padded to the common width, coloured when the console is a terminal."""
        text = f"{name:<{self.name_width}} |"
        if not self.colour:
            return text
        code = self._colours.setdefault(name, _COLOURS[len(self._colours) % len(_COLOURS)])
        return f"\033[{code}m{text}{_RESET}"

    def say(self, message: str, name: str = "flotilla") -> None:
        """Write the supervisor's own lines with the same framing as the children's."""
        for line in message.splitlines() or [""]:
            self._write(name, line)

    def _write(self, name: str, line: str) -> None:
        with self._console_lock:
            self.console.write(f"{self.prefix(name)} {line}\n")
            self.console.flush()

    def _pump(self, child: Child, stream: IO[bytes]) -> None:
        with child.log_path.open("ab") as log, stream:
            for raw in iter(stream.readline, b""):
                log.write(raw)
                log.flush()
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                child._remember(line)
                self._write(child.name, line)

    # --- starting -----------------------------------------------------------------------------

    def start(self, spec: ProcessSpec, *, is_task: bool = False) -> Child:
        """Start ``spec`` now (from the calling thread: keep that the main thread, see the module doc).

        A task (``is_task``) is expected to exit; any other child exiting is what :meth:`watch` reports.
        """
        if self.stop_requested.is_set():
            raise Interrupted("stopping")
        self._start_watchdog()
        log_path = self.log_dir / f"{spec.name}.log"
        log_path.write_bytes(b"")
        popen = subprocess.Popen(
            list(spec.argv),
            env=dict(spec.env) if spec.env is not None else None,
            cwd=spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_child_setup(spec.account, os.getpid()),  # noqa: PLW1509 - see the module doc
        )
        child = Child(spec, popen, log_path, is_task)
        assert popen.stdout is not None
        child._pump = threading.Thread(
            target=self._pump, args=(child, popen.stdout), name=f"output-{spec.name}", daemon=True
        )
        child._pump.start()
        self.children.append(child)
        self._write_pid_file(child)
        return child

    def run_task(self, spec: ProcessSpec, timeout: float) -> Child:
        """Run a one-shot command to completion; ``ProcessFailed`` unless it exits 0."""
        return self.run_tasks([spec], timeout)[0]

    def run_tasks(self, specs: Iterable[ProcessSpec], timeout: float) -> list[Child]:
        """Run one-shot commands side by side; all must exit 0 (the first failure stops the wait)."""
        tasks = [self.start(spec, is_task=True) for spec in specs]

        def done() -> bool:
            for task in tasks:
                if task.returncode not in (None, 0):
                    raise ProcessFailed(task, "while starting the stack")
            return all(task.returncode == 0 for task in tasks)

        self.wait_until(done, timeout, " and ".join(task.name for task in tasks) or "nothing")
        for task in tasks:
            self._finish(task)
        return tasks

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``condition`` until it holds; fail fast when a long-running child exits or a stop is asked.

        Any long-running child (not a task) exiting while the stack starts is a failure, whatever is
        being waited for: a service that crashes should be named at once, not after a timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.stop_requested.is_set():
                raise Interrupted(f"stopped while waiting for {what}")
            for child in self.children:
                if not child.is_task and not child.alive():
                    raise ProcessFailed(child, f"while waiting for {what}")
            with contextlib.suppress(OSError):
                if condition():
                    return
            if time.monotonic() >= deadline:
                raise StackError(f"{what}: not ready after {timeout:.0f}s")
            self.stop_requested.wait(0.1)

    # --- running and stopping -------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """Ctrl-C and SIGTERM ask for a clean stop (the children, in their own sessions, see neither)."""

        def handler(signum: int, frame: FrameType | None) -> None:
            self.stop_requested.set()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGHUP, handler)

    def watch(self) -> Child | None:
        """Block until a stop is asked (None) or a long-running child exits (that child)."""
        while not self.stop_requested.wait(0.2):
            for child in self.children:
                if child.returncode is not None and not child.is_task:
                    return child
        return None

    def stop(self) -> None:
        """Stop every child, phase by phase: its stop signal to the group, then SIGKILL after the grace.

        Whatever is left in a child's process group afterwards (a worker that ignored the signal) is
        killed too, so nothing started here outlives this call.
        """
        for phase in sorted({child.spec.stop_phase for child in self.children}):
            members = [c for c in self.children if c.spec.stop_phase == phase]
            for child in members:
                if child.alive():
                    _signal_group(child.pid, child.spec.stop_signal)
            deadline = time.monotonic() + self.grace_seconds
            for child in members:
                try:
                    child.popen.wait(timeout=max(deadline - time.monotonic(), 0.01))
                except subprocess.TimeoutExpired:
                    self.say(f"{child.name} did not stop within {self.grace_seconds:.0f}s: killing it")
                    _signal_group(child.pid, signal.SIGKILL)
                    child.popen.wait()
        for child in self.children:
            _signal_group(child.pid, signal.SIGKILL)  # stragglers in the group, if any
            self._finish(child)
        self._stop_watchdog()

    def _finish(self, child: Child) -> None:
        if child._pump is not None:
            child._pump.join(timeout=5)
        if self.pid_dir is not None:
            (self.pid_dir / f"{child.name}.pid").unlink(missing_ok=True)

    def _start_watchdog(self) -> None:
        """A helper that kills every recorded group if this process dies (``flotilla_dev.localstack.watchdog``)."""
        if self.pid_dir is None or self._watchdog is not None:
            return
        read_end, self._watchdog_pipe = os.pipe()
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-m", "flotilla_dev.localstack.watchdog", str(self.pid_dir)],
                stdin=read_end,
                # No parent-death signal here: it must outlive us to do its job; end-of-file ends it.
                start_new_session=True,
            )
        finally:
            os.close(read_end)

    def _stop_watchdog(self) -> None:
        if self._watchdog_pipe is not None:
            os.close(self._watchdog_pipe)
            self._watchdog_pipe = None
        if self._watchdog is not None:
            try:
                self._watchdog.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()
            self._watchdog = None

    def _write_pid_file(self, child: Child) -> None:
        if self.pid_dir is not None:
            (self.pid_dir / f"{child.name}.pid").write_text(f"{child.pid} {child.start_time}\n")


# --- helpers ----------------------------------------------------------------------------------------


def _wants_colour(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return bool(getattr(stream, "isatty", lambda: False)())


_libc: ctypes.CDLL | None = None


def _prctl() -> ctypes.CDLL:
    global _libc  # noqa: PLW0603 - loaded once, in the parent, before any fork
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def _child_setup(account: tuple[int, int] | None, parent: int) -> Callable[[], None]:
    """What runs in the child between fork and exec: drop privileges, then ask for parent-death SIGKILL.

    The order matters: the kernel clears the parent-death signal when the credentials change.
    """
    libc = _prctl() if sys.platform.startswith("linux") else None

    def setup() -> None:
        if account is not None:
            uid, gid = account
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before the line above took effect
            os._exit(1)

    return setup


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (0 when unknown): pid plus this is unique."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def group_members(pgid: int, not_before: int) -> list[int]:
    """Live processes in process group ``pgid`` started at or after ``not_before`` (clock ticks).

    Everything a child starts inherits its group and starts after it, so this finds gunicorn
    workers and Postgres backends even once the group leader itself is gone, and never a process
    of an older group that happened to get the same number.
    """
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and int(fields[19]) >= not_before:
                found.append(int(stat_file.parent.name))
    return found


def kill_recorded(pid_dir: Path) -> list[str]:
    """SIGKILL every process of the groups recorded in ``pid_dir``; the names of groups that had any.

    Used by the watchdog when the supervisor dies, and by the next run for what a crashed run left.
    """
    killed: list[str] = []
    if not pid_dir.is_dir():
        return killed
    for record in sorted(pid_dir.glob("*.pid")):
        with contextlib.suppress(ValueError, OSError):
            pid_text, start_text = record.read_text().split()
            members = group_members(int(pid_text), int(start_text)) if int(start_text) else []
            for member in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(member, signal.SIGKILL)
            if members:
                killed.append(record.stem)
        record.unlink(missing_ok=True)
    return killed


def process_alive(pid: int, started: int) -> bool:
    """Whether ``pid`` is still the process that started at ``started`` ticks (see :func:`kill_recorded`)."""
    return started != 0 and start_time(pid) == started
