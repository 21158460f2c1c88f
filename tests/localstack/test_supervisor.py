"""The local-stack supervisor with real child processes: output, failures, stopping, and no orphans."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flotilla_dev.localstack.supervisor import (
    Interrupted,
    ProcessFailed,
    ProcessSpec,
    StackError,
    Supervisor,
    kill_recorded,
    start_time,
)
from flotilla_dev.localstack.up import already_running

from tests.support import ROOT

PY = sys.executable


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan reparented to a PID 1 that does not reap stays a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid in pids if running(pid)]
        if not left:
            return []
        time.sleep(0.05)
    return [pid for pid in pids if running(pid)]


def supervisor(tmp_path: Path, **kwargs: object) -> tuple[Supervisor, io.StringIO]:
    console = io.StringIO()
    options: dict[str, object] = {"console": console, "colour": False, "name_width": 8, "grace_seconds": 2}
    options.update(kwargs)
    return Supervisor(tmp_path / "logs", pid_dir=tmp_path / "pids", **options), console  # type: ignore[arg-type]


def test_output_is_prefixed_aligned_and_kept_raw_in_a_log_file(tmp_path):
    sup, console = supervisor(tmp_path)
    doc = {"level": "INFO", "message": "hello | world", "trace_id": "ab" * 16}
    script = f"import json; print(json.dumps({doc!r})); print('plain line')"
    sup.run_tasks([ProcessSpec("svc", [PY, "-c", script]), ProcessSpec("longer-1", ["echo", "hi"])], 30)

    lines = console.getvalue().splitlines()
    svc_lines = [line for line in lines if line.startswith("svc ")]
    assert svc_lines[0].startswith("svc      | {")
    assert json.loads(svc_lines[0].split(" | ", 1)[1]) == doc  # the JSON is intact after the prefix
    assert svc_lines[1] == "svc      | plain line"
    assert "longer-1 | hi" in lines
    assert (tmp_path / "logs" / "svc.log").read_text().splitlines()[1] == "plain line"
    assert not list((tmp_path / "pids").iterdir())  # finished tasks leave no pid file


def test_colour_prefixes_differ_per_process_and_reset(tmp_path):
    sup, _ = supervisor(tmp_path, colour=True)
    first, second = sup.prefix("a"), sup.prefix("b")
    assert first != second
    assert first.startswith("\033[") and first.endswith("\033[0m")
    assert sup.prefix("a") == first
    assert re.sub(r"\033\[[0-9;]*m", "", first) == "a        |"


def test_a_failing_task_is_named_with_its_exit_code_and_last_lines(tmp_path):
    sup, _ = supervisor(tmp_path)
    script = (
        "import sys; print('connecting'); print('config error: CATALOG_DATABASE_URL missing'); sys.exit(3)"
    )
    with pytest.raises(ProcessFailed) as failed:
        sup.run_task(ProcessSpec("catalog-migrate", [PY, "-c", script]), 30)
    message = str(failed.value)
    assert "catalog-migrate exited with code 3" in message
    assert "config error: CATALOG_DATABASE_URL missing" in message
    assert str(tmp_path / "logs" / "catalog-migrate.log") in message
    sup.stop()


def test_a_service_dying_while_others_are_awaited_fails_at_once(tmp_path):
    sup, _ = supervisor(tmp_path)
    sup.start(ProcessSpec("sleeper", ["sleep", "30"]))
    sup.start(ProcessSpec("crasher", [PY, "-c", "print('bad setting'); raise SystemExit(2)"]))
    with pytest.raises(ProcessFailed) as failed:  # not StackError("not ready after 30s")
        sup.wait_until(lambda: False, 30, "the gateway")
    assert "crasher exited with code 2 while waiting for the gateway" in str(failed.value)
    assert "bad setting" in str(failed.value)
    sup.stop()


def test_waiting_gives_up_after_the_timeout_and_on_a_stop_request(tmp_path):
    sup, _ = supervisor(tmp_path)
    with pytest.raises(StackError, match="redis: not ready after"):
        sup.wait_until(lambda: False, 0.3, "redis")
    sup.stop_requested.set()
    with pytest.raises(Interrupted):
        sup.wait_until(lambda: False, 30, "redis")


def test_stop_reaches_grandchildren_and_kills_what_ignores_sigterm(tmp_path):
    sup, console = supervisor(tmp_path, grace_seconds=1)
    sup.start(ProcessSpec("parent", ["sh", "-c", "sleep 300 & echo grandchild $!; wait"]))
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(300)"
    sup.start(ProcessSpec("stubborn", [PY, "-c", stubborn]))
    sup.wait_until(lambda: "grandchild" in console.getvalue() and "up" in console.getvalue(), 10, "output")
    grandchild = int(re.search(r"grandchild (\d+)", console.getvalue()).group(1))  # type: ignore[union-attr]
    pids = [child.pid for child in sup.children] + [grandchild]

    sup.stop()
    assert wait_gone(pids, timeout=2) == []
    assert "stubborn did not stop within 1s: killing it" in console.getvalue()
    assert not list((tmp_path / "pids").iterdir())


def start_driver(tmp_path: Path) -> tuple[subprocess.Popen[str], list[int]]:
    """The driver's pid and every pid below it, once it says it started everything."""
    driver = subprocess.Popen(
        [PY, "-m", "tests.localstack.driver", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert driver.stdout is not None
    seen = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = driver.stdout.readline()
        seen.append(line)
        if "flotilla" in line and "started" in line:
            break
    else:
        driver.kill()
        pytest.fail(f"driver did not start: {seen}")
    pids = [int(p.read_text().split()[0]) for p in (tmp_path / "pids").glob("*.pid")]
    deadline = time.monotonic() + 10
    while not any("grandchild" in line for line in seen) and time.monotonic() < deadline:
        seen.append(driver.stdout.readline())
    grandchild = next(int(line.split()[-1]) for line in seen if "grandchild" in line)
    return driver, [*pids, grandchild]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_stops_everything_and_exits_0(tmp_path, signum):
    driver, pids = start_driver(tmp_path)
    assert len(pids) == 3 and all(running(pid) for pid in pids)
    driver.send_signal(signum)
    assert driver.wait(timeout=20) == 0
    assert wait_gone(pids, timeout=2) == []
    assert not list((tmp_path / "pids").iterdir())


def test_a_killed_supervisor_leaves_no_orphan(tmp_path):
    """SIGKILL gives the supervisor no chance to clean up: parent-death signals and the watchdog do it."""
    driver, pids = start_driver(tmp_path)
    driver.kill()
    driver.wait(timeout=10)
    assert wait_gone(pids, timeout=10) == []


def test_the_next_run_kills_what_a_crashed_run_left_and_never_a_reused_pid(tmp_path):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    leftover = subprocess.Popen(["sh", "-c", "sleep 300 & wait"], start_new_session=True)
    time.sleep(0.2)
    (pid_dir / "catalog.pid").write_text(f"{leftover.pid} {start_time(leftover.pid)}\n")
    (pid_dir / "reused.pid").write_text(f"{os.getpid()} 1\n")  # our pid, another start time: not ours to kill
    assert kill_recorded(pid_dir) == ["catalog"]
    assert leftover.wait(timeout=5) == -signal.SIGKILL
    assert not list(pid_dir.iterdir())


def test_a_live_stack_is_detected_and_a_stale_pid_file_is_not(tmp_path):
    (tmp_path / "up.pid").write_text(f"{os.getpid()} {start_time(os.getpid())}\n")
    assert already_running(tmp_path) == os.getpid()
    (tmp_path / "up.pid").write_text(f"{os.getpid()} 12345\n")
    assert already_running(tmp_path) is None
    (tmp_path / "up.pid").write_text("garbage")
    assert already_running(tmp_path) is None
