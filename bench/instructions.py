"""Instructions per request, counted by valgrind (callgrind): the chassis' cost without the noise.

On a shared machine requests/s and even CPU time per request swing from run to run (a busy
neighbour's steal time lands on our processes too); an instruction count does not. Each variant
runs twice, with a small and a large request count, and the difference divided by the extra
requests is the cost of one request, start-up excluded, export threads included:

- over HTTP: the server (gunicorn, 1 worker x 4 threads, every process of it counted) answers
  requests sent one after another on a keep-alive connection by a client outside valgrind;
- in-process: the same WSGI app called directly, no HTTP and no gunicorn.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TITLE = "Instructions per request (valgrind)"

ROOT = Path(__file__).resolve().parent.parent
SMALL, LARGE = 200, 1200
HTTP_SMALL, HTTP_LARGE = 100, 600
VARIANTS = [
    ("bare", "Bare Flask"),
    ("stock", "Flask + stock OTel Flask instrumentation + prometheus_client"),
    ("flotilla", "Flotilla chassis (everything on, 100% sampling, file sink, JSON access log)"),
]


def _env(variant: str, workdir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FLOTILLA_TRACE_FILE": str(workdir / f"{variant}-spans.jsonl"),
        "BENCH_TRACE_FILE": str(workdir / f"{variant}-stock-spans.jsonl"),
        "FLOTILLA_THREADS": "4",
        "FLOTILLA_MAX_REQUESTS": "0",
        "FLOTILLA_DRAIN_SECONDS": "0",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def _server(variant: str, port: int) -> list[str]:
    if variant == "flotilla":
        return [
            sys.executable,
            "-m",
            "flotilla.cli",
            "serve",
            "sample",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ]
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        "1",
        "--threads",
        "4",
        "--worker-class",
        "gthread",
        "--keep-alive",
        "75",
        "--bind",
        f"127.0.0.1:{port}",
        "--no-control-socket",
        f"bench.apps:{variant}()",
    ]


def count_http(variant: str, calls: int, workdir: Path) -> int:
    """Instructions of every server process (master and worker) while it answers ``calls`` requests."""
    import http.client
    import signal

    from bench.proc import wait_http
    from tests.support import free_port

    port = free_port()
    out_dir = workdir / f"http-{variant}-{calls}"
    out_dir.mkdir()
    env = {**_env(variant, workdir), "PROMETHEUS_MULTIPROC_DIR": str(out_dir / "prom")}
    (out_dir / "prom").mkdir()
    proc = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            "--trace-children=yes",
            f"--callgrind-out-file={out_dir}/cg.%p",
            *_server(variant, port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", proc, timeout=300)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(calls):
            conn.request("GET", "/ping")
            conn.getresponse().read()
        conn.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=300)
    total = 0
    for path in out_dir.glob("cg.*"):
        found = re.search(r"^(?:summary|totals): (\d+)", path.read_text(errors="replace"), re.MULTILINE)
        total += int(found.group(1)) if found else 0
    return total


def count(variant: str, calls: int, workdir: Path) -> int:
    env = _env(variant, workdir)
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "bench.wsgi_loop",
            variant,
            str(calls),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    found = re.search(r"Collected : (\d+)", out)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{out[-2000:]}")
    return int(found.group(1))


def _per_request(counter: object, small: int, large: int, workdir: Path) -> dict[str, float]:
    with ThreadPoolExecutor(2) as pool:
        jobs = {
            (v, n): pool.submit(counter, v, n, workdir)  # type: ignore[arg-type]
            for v, _ in VARIANTS
            for n in (small, large)
        }
        return {v: (jobs[v, large].result() - jobs[v, small].result()) / (large - small) for v, _ in VARIANTS}


def _table(per: dict[str, float]) -> list[str]:
    bare = per["bare"]
    rows = ["| variant | instructions per request | vs bare |", "|---|---:|---:|"]
    return rows + [f"| {label} | {per[v]:,.0f} | {per[v] / bare:.2f}x |" for v, label in VARIANTS]


def run() -> str:
    if shutil.which("valgrind") is None:
        return "valgrind is not installed (Debian package `valgrind`): section skipped."
    with tempfile.TemporaryDirectory(prefix="flotilla-instr-") as tmp:
        http = _per_request(count_http, HTTP_SMALL, HTTP_LARGE, Path(tmp))
        inproc = _per_request(count, SMALL, LARGE, Path(tmp))
    ratio = http["flotilla"] / http["bare"]
    goal = "within" if ratio <= 1.18 else "over"
    return "\n".join(
        [
            __doc__.split("\n", 2)[2].strip(),
            "",
            f"**Over HTTP** ({HTTP_SMALL} and {HTTP_LARGE} requests):",
            "",
            *_table(http),
            "",
            f"**In-process** ({SMALL} and {LARGE} calls):",
            "",
            *_table(inproc),
            "",
            f"**Where it stands:** over HTTP the chassis costs {ratio:.2f}x bare Flask's instructions per request "
            f"({goal} the 1.18x goal) and {http['flotilla'] / http['stock']:.2f}x the stock setup's.",
        ]
    )
