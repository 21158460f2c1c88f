"""``python -m bench [SECTION...]``: run benchmark sections and write docs/benchmarks.md.

Each section is a module in this package with ``TITLE`` and ``run() -> str`` (markdown). Sections
that fail are reported in the document rather than stopping the others.
"""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import subprocess
import sys
import traceback
from pathlib import Path

SECTIONS = ["chassis_overhead"]

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
    ).stdout.strip()
    return (
        f"- Machine: {os.cpu_count()} CPUs ({cpu}), {mem_gib:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; a shared, noisy virtual machine.\n"
        f"- Run: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC at commit {commit or 'unknown'}.\n"
    )


def main(argv: list[str]) -> int:
    chosen = argv or SECTIONS
    parts = [
        "# Benchmarks\n",
        "Written by `make bench` (`python -m bench`); numbers below are from the last run.\n",
        machine(),
    ]
    failed = 0
    for name in chosen:
        module = importlib.import_module(f"bench.{name}")
        print(f"== {module.TITLE}", flush=True)
        try:
            parts.append(f"\n## {module.TITLE}\n\n{module.run().strip()}\n")
        except Exception:
            failed += 1
            parts.append(f"\n## {module.TITLE}\n\nThis section failed:\n\n```\n{traceback.format_exc()}```\n")
    OUTPUT.write_text("\n".join(parts))
    print(f"wrote {OUTPUT}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
