"""A supervisor in a process of its own, for the tests that signal or kill it.

``python -m tests.localstack.driver STATE_DIR`` starts a shell that has a child of its own (a
grandchild of the supervisor) and a process that ignores SIGTERM, prints ``started``, then runs
until SIGTERM/SIGINT (exit 0) or a child dies (exit 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

from flotilla_dev.localstack.supervisor import ProcessSpec, Supervisor

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(300)"


def main(state: Path) -> int:
    supervisor = Supervisor(state / "logs", pid_dir=state / "pids", colour=False, grace_seconds=2)
    supervisor.install_signal_handlers()
    supervisor.start(ProcessSpec("parent", ["sh", "-c", "sleep 300 & echo grandchild $!; wait"]))
    supervisor.start(ProcessSpec("stubborn", [sys.executable, "-c", STUBBORN]))
    supervisor.say("started")
    died = supervisor.watch()
    supervisor.stop()
    return 0 if died is None else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
