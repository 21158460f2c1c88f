"""Durable sagas against real Postgres: forward, compensation in reverse, retries after the pivot,
one runner per saga, and a runner killed half-way whose saga recovery finishes or compensates."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from flotilla.backoff import Backoff
from flotilla.saga import Definition, Orchestrator, SagaState, Status, Step, StepFailed, step_log
from tests.data.support import fresh_database

pytestmark = pytest.mark.slow

FAST = Backoff(base_seconds=0.0, max_seconds=0.0, full_jitter=False)


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    with fresh_database(postgres_url) as url:
        engine = sa.create_engine(url)
        yield engine
        engine.dispose()


class Ledger:
    """The business side the steps act on: what was done and undone, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: dict[str, Exception] = {}
        self.lock = threading.Lock()

    def step(self, name: str, out: dict[str, Any] | None = None) -> Any:
        def action(state: SagaState) -> dict[str, Any] | None:
            with self.lock:
                self.calls.append(name)
            if name in self.fail:
                raise self.fail[name]
            return out

        return action

    def undo(self, name: str) -> Any:
        def compensate(state: SagaState) -> None:
            with self.lock:
                self.calls.append(f"undo {name}")
            if f"undo {name}" in self.fail:
                raise self.fail[f"undo {name}"]

        return compensate


def checkout(ledger: Ledger, compensated: list[SagaState] | None = None) -> Definition:
    return Definition(
        kind="checkout",
        steps=[
            Step("reserve", ledger.step("reserve", {"reservation": "r-1"}), ledger.undo("reserve")),
            Step(
                "authorize",
                ledger.step("authorize", {"auth": "a-1"}),
                ledger.undo("authorize"),
                "payments_down",
            ),
            Step("confirm", ledger.step("confirm")),
            Step("capture", ledger.step("capture")),
        ],
        pivot="confirm",
        on_compensated=(compensated.append if compensated is not None else lambda state: None),
    )


def started(orchestrator: Orchestrator, saga_id: str, deadline: float = 30.0) -> None:
    with orchestrator.engine.begin() as conn:
        orchestrator.begin(conn, saga_id, {"order": saga_id}, deadline)


def test_a_saga_runs_every_step_in_order_and_records_each(engine: sa.Engine) -> None:
    ledger = Ledger()
    orchestrator = Orchestrator(engine, checkout(ledger))
    orchestrator.create_tables()
    started(orchestrator, "o-1")
    assert orchestrator.run("o-1") is Status.DONE
    assert ledger.calls == ["reserve", "authorize", "confirm", "capture"]
    entries = [(e["step"], e["outcome"]) for e in step_log(engine, "o-1")]
    assert entries == [(name, outcome) for name in ledger.calls for outcome in ("started", "succeeded")]
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT data, lease_owner FROM flotilla_sagas WHERE id = 'o-1'")).one()
    assert row.data == {"order": "o-1", "reservation": "r-1", "auth": "a-1"}
    assert row.lease_owner is None
    assert orchestrator.run("o-1") is Status.DONE  # finished sagas are not run again
    assert len(ledger.calls) == 4


def test_a_refusal_compensates_every_started_step_in_reverse(engine: sa.Engine) -> None:
    ledger = Ledger()
    ledger.fail["authorize"] = StepFailed("card_declined", "the issuer said no")
    compensated: list[SagaState] = []
    orchestrator = Orchestrator(engine, checkout(ledger, compensated))
    orchestrator.create_tables()
    started(orchestrator, "o-2")
    assert orchestrator.run("o-2") is Status.COMPENSATED
    # The failed step is compensated too: its effect may have happened (a call that timed out).
    assert ledger.calls == ["reserve", "authorize", "undo authorize", "undo reserve"]
    assert [state.reason for state in compensated] == ["card_declined"]
    failed = [e for e in step_log(engine, "o-2") if e["outcome"] == "failed"]
    assert [(e["step"], e["detail"]) for e in failed] == [
        ("authorize", "card_declined: StepFailed: the issuer said no")
    ]


def test_an_unexpected_error_before_the_pivot_compensates_with_the_steps_reason(engine: sa.Engine) -> None:
    ledger = Ledger()
    ledger.fail["authorize"] = ConnectionError("circuit open")
    compensated: list[SagaState] = []
    orchestrator = Orchestrator(engine, checkout(ledger, compensated))
    orchestrator.create_tables()
    started(orchestrator, "o-3")
    assert orchestrator.run("o-3") is Status.COMPENSATED
    assert compensated[0].reason == "payments_down"


def test_a_saga_past_its_deadline_compensates_before_the_next_step(engine: sa.Engine) -> None:
    ledger = Ledger()
    compensated: list[SagaState] = []
    definition = checkout(ledger, compensated)
    slow = Step("reserve", lambda state: time.sleep(1.2) or {"reservation": "r"}, ledger.undo("reserve"))
    definition = Definition(definition.kind, [slow, *definition.steps[1:]], "confirm", compensated.append)
    orchestrator = Orchestrator(engine, definition)
    orchestrator.create_tables()
    started(orchestrator, "o-4", deadline=1.0)
    assert orchestrator.run("o-4") is Status.COMPENSATED
    assert ledger.calls == ["undo reserve"]
    assert compensated[0].reason == "deadline_exceeded"


def test_after_the_pivot_a_failing_step_is_retried_until_it_succeeds(engine: sa.Engine) -> None:
    ledger = Ledger()
    ledger.fail["capture"] = ConnectionError("payments down")
    orchestrator = Orchestrator(engine, checkout(ledger), backoff=FAST)
    orchestrator.create_tables()
    started(orchestrator, "o-5")
    assert orchestrator.run("o-5") is Status.RUNNING
    assert orchestrator.recover_once() == 1
    assert orchestrator.status("o-5") is Status.RUNNING
    del ledger.fail["capture"]
    assert orchestrator.recover_once() == 1
    assert orchestrator.status("o-5") is Status.DONE
    assert ledger.calls == ["reserve", "authorize", "confirm", "capture", "capture", "capture"]
    assert "undo" not in " ".join(ledger.calls)


def test_a_failing_compensation_is_retried_and_the_saga_ends_compensated(engine: sa.Engine) -> None:
    ledger = Ledger()
    ledger.fail["authorize"] = StepFailed("card_declined")
    ledger.fail["undo reserve"] = ConnectionError("inventory down")
    compensated: list[SagaState] = []
    orchestrator = Orchestrator(engine, checkout(ledger, compensated), backoff=FAST)
    orchestrator.create_tables()
    started(orchestrator, "o-6")
    assert orchestrator.run("o-6") is Status.COMPENSATING
    assert compensated == []
    del ledger.fail["undo reserve"]
    orchestrator.recover_once()
    assert orchestrator.status("o-6") is Status.COMPENSATED
    # "undo authorize" ran once: done compensations are not repeated.
    assert ledger.calls == ["reserve", "authorize", "undo authorize", "undo reserve", "undo reserve"]
    assert len(compensated) == 1


def test_a_leased_saga_is_not_run_by_another_runner(engine: sa.Engine) -> None:
    ledger = Ledger()
    first = Orchestrator(engine, checkout(ledger), owner="first")
    second = Orchestrator(engine, checkout(ledger), owner="second")
    first.create_tables()
    started(first, "o-7")
    assert second.due() == []
    assert second.run("o-7") is Status.RUNNING  # held by first: nothing ran
    assert ledger.calls == []
    assert first.run("o-7") is Status.DONE


def test_only_one_recovery_loop_works_at_a_time(engine: sa.Engine) -> None:
    ledger = Ledger()
    orchestrators = [
        Orchestrator(engine, checkout(ledger), owner=f"r{n}", lease_seconds=0.2) for n in range(2)
    ]
    orchestrators[0].create_tables()
    stopping = threading.Event()
    loops = [threading.Thread(target=o.run_recovery, args=(stopping, 0.05)) for o in orchestrators]
    for loop in loops:
        loop.start()
    try:
        time.sleep(0.5)
        with engine.connect() as conn:
            holders = conn.execute(
                sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
            ).scalar()
        assert holders == 1
        for n in range(5):
            with engine.begin() as conn:
                orchestrators[0].begin(conn, f"r-{n}", {}, 30)
        deadline = time.monotonic() + 10
        while sum(orchestrators[0].status(f"r-{n}") is Status.DONE for n in range(5)) < 5:
            assert time.monotonic() < deadline, "recovery never finished the sagas"
            time.sleep(0.05)
    finally:
        stopping.set()
        for loop in loops:
            loop.join(timeout=10)
    assert ledger.calls.count("capture") == 5  # each saga once, whichever loop ran it


RUNNER = """
import os, sys, sqlalchemy as sa
from flotilla.saga import Definition, Orchestrator, Step
engine = sa.create_engine(sys.argv[1])
def hang(state):
    print("in authorize", flush=True)
    os.kill(os.getpid(), 9)
orchestrator = Orchestrator(engine, Definition("checkout", [
    Step("reserve", lambda s: {"reservation": "r-1"}, lambda s: None),
    Step("authorize", hang, lambda s: None),
    Step("confirm", lambda s: None),
    Step("capture", lambda s: None),
], "confirm"), lease_seconds=1.0, owner="doomed")
orchestrator.create_tables()
with engine.begin() as conn:
    orchestrator.begin(conn, sys.argv[2], {}, float(sys.argv[3]))
orchestrator.run(sys.argv[2])
"""


@pytest.mark.parametrize(("deadline", "ending"), [(30.0, Status.DONE), (1.5, Status.COMPENSATED)])
def test_a_runner_killed_half_way_leaves_a_saga_recovery_finishes_or_compensates(
    engine: sa.Engine, tmp_path: Path, deadline: float, ending: Status
) -> None:
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    killed = subprocess.run(
        [sys.executable, str(script), engine.url.render_as_string(hide_password=False), "o-9", str(deadline)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    ledger = Ledger()
    compensated: list[SagaState] = []
    recovery = Orchestrator(engine, checkout(ledger, compensated), owner="recovery")
    assert recovery.status("o-9") is Status.RUNNING
    assert recovery.due() == []  # the dead runner's lease still stands
    time.sleep(max(1.1, deadline if ending is Status.COMPENSATED else 0) + 0.1)
    assert recovery.due() == ["o-9"]
    recovery.recover_once()
    assert recovery.status("o-9") is ending
    if ending is Status.DONE:
        # authorize was started and never finished: it is run again (actions are idempotent).
        assert ledger.calls == ["authorize", "confirm", "capture"]
    else:
        assert ledger.calls == ["undo authorize", "undo reserve"]
        assert compensated[0].reason == "deadline_exceeded"
    owners = {e["owner"] for e in step_log(engine, "o-9")}
    assert owners == {"doomed", "recovery"}
