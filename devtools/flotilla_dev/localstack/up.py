"""Start the whole stack in order, keep it running, stop it: what ``flotilla up`` (and ``make run``) does.

Order: backends (emulator, Postgres, Redis, dev issuer) side by side; then the one-shot tasks
(provision, migrate) side by side; then every service and consumer, waiting for each ``/readyz``;
then the seeds; then the banner. Any failure on the way stops everything started so far and names
the process with its last lines. Afterwards the supervisor waits for Ctrl-C or SIGTERM (exit 0) or
for a process to die (everything stops, exit 1: a half-running stack only confuses).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from flotilla_dev.localstack import backends
from flotilla_dev.localstack.banner import render
from flotilla_dev.localstack.stack import CLOUDMAP_NAMESPACE, Options, Plan, make_plan, pid_file
from flotilla_dev.localstack.supervisor import (
    Interrupted,
    ProcessFailed,
    StackError,
    Supervisor,
    kill_recorded,
    process_alive,
)

TASK_TIMEOUT = 120.0


def already_running(state_dir: Path) -> int | None:
    """The pid of a live ``flotilla up`` using ``state_dir``, if any (a stale pid file is ignored)."""
    try:
        pid_text, start_text = (state_dir / "up.pid").read_text().split()
        pid, started = int(pid_text), int(start_text)
    except (OSError, ValueError):
        return None
    return pid if process_alive(pid, started) else None


def run(options: Options, console: TextIO | None = None) -> int:
    """Run the stack until stopped; the exit code (0 after Ctrl-C or SIGTERM, 1 after a failure)."""
    state = options.state_dir
    state.mkdir(parents=True, exist_ok=True)
    running = already_running(state)
    if running is not None:
        raise StackError(
            f"a stack is already running from {state} (pid {running}): stop it first "
            f"(Ctrl-C in its terminal, or kill {running}), or pass another --state-dir"
        )
    leftovers = kill_recorded(state / "pids")
    plan = make_plan(options)
    supervisor = Supervisor(
        plan.log_dir,
        console=console,
        name_width=max(len(name) for name in plan.process_names()),
        pid_dir=state / "pids",
    )
    supervisor.install_signal_handlers()
    if leftovers:
        supervisor.say(f"killed what a previous run left behind: {', '.join(leftovers)}")
    with pid_file(state / "up.pid"):
        try:
            start(plan, supervisor, options.ready_timeout)
        except Interrupted:
            supervisor.say("stopping (interrupted while starting)")
            supervisor.stop()
            backends.discard_outside_data(state)
            return 0
        except StackError as err:
            supervisor.say(f"start-up failed: {err}")
            supervisor.say("stopping everything")
            supervisor.stop()
            backends.discard_outside_data(state)
            return 1
        (state / "stack.json").write_text(json.dumps(plan.describe(), indent=2) + "\n")
        supervisor.say(render(plan))
        died = supervisor.watch()
        if died is not None:
            supervisor.say(str(ProcessFailed(died, "while the stack was running")))
        supervisor.say("stopping")
        supervisor.stop()
        backends.discard_outside_data(state)
        (state / "stack.json").unlink(missing_ok=True)
        supervisor.say("stopped")
        return 1 if died is not None else 0


def start(plan: Plan, supervisor: Supervisor, timeout: float) -> None:
    """Everything in order; raises ``StackError`` (with the failing process and its output) or ``Interrupted``."""

    def wait(what: str, ready: Callable[[], bool]) -> None:
        supervisor.wait_until(ready, timeout, what)

    # 1. Backends, side by side.
    supervisor.start(backends.emulator(plan.emulator_port, plan.base_env()))
    postgres = plan.postgres
    if postgres is not None:
        # Through the real path: the account Postgres runs as may not reach it through the state dir.
        postgres = dataclasses.replace(
            postgres, data_dir=backends.fresh_postgres_dir(plan.state_dir, postgres.account)
        )
        supervisor.run_task(postgres.initdb(plan.base_env()), TASK_TIMEOUT)
        supervisor.start(postgres.server(plan.base_env()))
    if plan.redis_port is not None and plan.redis_binary is not None:
        redis_dir = plan.state_dir / "redis"
        supervisor.start(
            backends.redis_server(plan.redis_binary, redis_dir, plan.redis_port, plan.base_env())
        )
    if plan.issuer_port is not None:
        supervisor.start(plan.issuer())

    wait("the AWS emulator", lambda: backends.http_ok(f"{plan.emulator_url}/moto-api/data.json"))
    if postgres is not None:
        wait("Postgres", lambda: backends.postgres_ready("127.0.0.1", postgres.port))
        backends.create_databases(postgres, [u.name for u in plan.services if u.wants_database])
    redis_port = plan.redis_port
    if redis_port is not None:
        wait("Redis", lambda: backends.redis_ready("127.0.0.1", redis_port))
    if plan.issuer_url is not None:
        wait("the dev issuer", lambda: backends.http_ok(f"{plan.issuer_url}/livez"))

    # 2. One-shot tasks: resources in the emulator, schemas in the databases.
    backends.cloudmap_namespace(plan.emulator_url, CLOUDMAP_NAMESPACE, plan.base_env()["AWS_DEFAULT_REGION"])
    tasks = [plan.task(u, "provision") for u in plan.services if u.has_resources]
    tasks += [plan.task(u, "migrate") for u in plan.services if u.wants_database and u.migrates]
    if tasks:
        supervisor.run_tasks(tasks, TASK_TIMEOUT)

    # 3. Services and consumers, then every /readyz.
    for unit in plan.services:
        supervisor.start(plan.serve(unit))
        if unit.consumer_port is not None:
            supervisor.start(plan.consume(unit))
    for unit in plan.services:
        wait(unit.name, functools.partial(backends.http_ok, f"{unit.url}/readyz"))
        if unit.consumer_port is not None:
            worker = f"http://127.0.0.1:{unit.consumer_port}/readyz"
            wait(f"{unit.name}-worker", functools.partial(backends.http_ok, worker))

    # 4. Starting data, once the services (and their caches) are up.
    seeds = [plan.task(u, "seed") for u in plan.services if u.wants_database and u.seeds]
    if seeds:
        supervisor.run_tasks(seeds, TASK_TIMEOUT)
