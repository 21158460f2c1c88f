"""``flotilla up`` end to end with the sample service: start, serve, stop cleanly, start again, fail loudly."""

from __future__ import annotations

import signal

import pytest
import requests

from tests.localstack.support import Stack, processes_using, wait_no_processes

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localstack")]

SAMPLE_ONLY = ["--service", "sample", "--no-postgres", "--no-redis"]


def test_up_serves_then_stops_cleanly_and_starts_again(tmp_path):
    state = tmp_path / "state"
    stack = Stack(state, SAMPLE_ONLY)
    try:
        info = stack.wait_ready()
        url = info["services"]["sample"]
        assert requests.get(f"{url}/hello/world", timeout=5).json() == {"message": "Hello, world!"}
        started = processes_using(state)
        assert len(started) >= 4  # emulator, gunicorn master and worker, watchdog, flotilla up
        text = stack.text()
        assert "5 created" in text  # provisioned in the emulator
        assert "Flotilla local stack is ready" in text
        assert f"curl -s {url}/hello/world" in text
        assert "--service sample" not in text  # the banner shows calls, not our flags
    finally:
        code = stack.stop(signal.SIGINT)  # what Ctrl-C sends
    assert code == 0, stack.text()[-3000:]
    assert wait_no_processes(state) == []
    assert not list((state / "pids").iterdir())
    assert not (state / "up.pid").exists()
    assert (state / "logs" / "sample.log").stat().st_size > 0

    again = Stack(state, SAMPLE_ONLY)
    try:
        again.wait_ready()
    finally:
        assert again.stop() == 0
    assert wait_no_processes(state) == []


def test_a_second_stack_on_the_same_state_dir_is_refused(tmp_path):
    state = tmp_path / "state"
    first = Stack(state, SAMPLE_ONLY)
    try:
        first.wait_ready()
        second = Stack(state, SAMPLE_ONLY)
        assert second.proc.wait(timeout=30) == 1
        assert f"a stack is already running from {state} (pid {first.proc.pid})" in second.text()
    finally:
        assert first.stop() == 0
    assert wait_no_processes(state) == []


def test_a_service_that_fails_to_start_is_named_with_its_last_lines_and_everything_stops(tmp_path):
    state = tmp_path / "state"
    stack = Stack(state, SAMPLE_ONLY, env={"SAMPLE_MAX_SLOW_SECONDS": "-1"})
    code = stack.proc.wait(timeout=60)
    text = stack.text()
    assert code == 1, text
    assert "start-up failed: sample-provision exited with code 2" in text
    assert "SAMPLE_MAX_SLOW_SECONDS" in text.split("start-up failed:", 1)[1]  # the quoted last lines
    assert "stopping everything" in text
    assert wait_no_processes(state) == []
    assert not list((state / "pids").iterdir())
