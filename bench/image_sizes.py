"""Size of each service image (goal: under 180 MB), from ``scripts/image-sizes.sh``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

TITLE = "Service image sizes"

ROOT = Path(__file__).resolve().parent.parent
GOAL_MB = 180.0


def run() -> str:
    if shutil.which("docker") is None:
        return "No Docker client on this machine: build the images (`make images`) where one runs."
    services = sorted(p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml"))
    listed = subprocess.run(
        ["scripts/image-sizes.sh", *services], cwd=ROOT, capture_output=True, text=True, check=False
    )
    rows = ["| service | size | under 180 MB |", "|---|---:|---|"]
    for line in listed.stdout.splitlines():
        service, size = line.split()
        rows.append(f"| {service} | {float(size):.1f} MB | {'yes' if float(size) < GOAL_MB else '**no**'} |")
    missing = [line for line in listed.stderr.splitlines() if line.strip()]
    note = ("\n\nNot built: " + "; ".join(missing)) if missing else ""
    return "Uncompressed image size as `docker image inspect` reports it.\n\n" + "\n".join(rows) + note
