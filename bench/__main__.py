"""``python -m bench [SECTION...]``: run benchmark sections and update docs/benchmarks.md.

Each section is a module in this package with ``TITLE`` and ``run() -> str`` (markdown). Running a
subset replaces only those sections in the document; a section that fails is reported there
instead of stopping the others.
"""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import re
import subprocess
import sys
import traceback
from pathlib import Path

SECTIONS = [
    "chassis_overhead",
    "instructions",
    "client_overhead",
    "consumer_throughput",
    "gateway_hop",
    "image_sizes",
]

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nWritten by `make bench` (`python -m bench [section...]`).\n"


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
        f"_Run {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC at commit {commit or 'unknown'} on "
        f"{os.cpu_count()} CPUs ({cpu}), {mem_gib:.0f} GiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}: a shared, noisy virtual machine._"
    )


def existing_sections() -> dict[str, str]:
    if not OUTPUT.exists():
        return {}
    parts = re.split(r"^## ", OUTPUT.read_text(), flags=re.MULTILINE)[1:]
    return {part.split("\n", 1)[0].strip(): "## " + part.rstrip() + "\n" for part in parts}


def main(argv: list[str]) -> int:
    available = [name for name in SECTIONS if (Path(__file__).parent / f"{name}.py").exists()]
    chosen = argv or available
    sections = existing_sections()
    failed = 0
    for name in chosen:
        module = importlib.import_module(f"bench.{name}")
        print(f"== {module.TITLE}", flush=True)
        try:
            body = module.run().strip()
        except Exception:
            failed += 1
            body = f"This section failed:\n\n```\n{traceback.format_exc()}```"
        sections[module.TITLE] = f"## {module.TITLE}\n\n{machine()}\n\n{body}\n"
    order = [importlib.import_module(f"bench.{name}").TITLE for name in available]
    ordered = [sections[t] for t in order if t in sections] + [
        v for t, v in sections.items() if t not in order
    ]
    OUTPUT.write_text(HEADER + "\n" + "\n".join(ordered))
    print(f"wrote {OUTPUT}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
