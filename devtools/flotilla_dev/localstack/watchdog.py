"""``python -m flotilla_dev.localstack.watchdog PID_DIR``: kill the stack's processes once the supervisor is gone.

The supervisor holds the write end of a pipe whose read end is this process's stdin. The kernel
closes it however the supervisor ends, SIGKILL included, so end-of-file here means "supervisor
gone": every process group still recorded in ``PID_DIR`` is then killed, grandchildren included
(``PR_SET_PDEATHSIG`` reaches only the supervisor's direct children). After a clean stop the
directory is empty and this exits having done nothing.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from flotilla_dev.localstack.supervisor import kill_recorded


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    while sys.stdin.buffer.read(4096):
        pass
    kill_recorded(Path(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
