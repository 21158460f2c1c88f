"""CPU per request of the chassis against bare Flask and the stock instrumentation, under gunicorn.

Requests/s swings with whatever else shares this machine; the server's CPU time per request
(utime + stime of master and workers, from /proc, divided by requests served) holds steady, so it
is the headline. Variants alternate over several rounds; medians are reported.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.load import LoadResult, drive
from bench.proc import cpu_seconds, serve_command, wait_http

TITLE = "Chassis overhead: bare Flask vs stock instrumentation vs Flotilla"

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "6"))
CONNECTIONS = 8
GUNICORN = ["--workers", "2", "--threads", "4", "--worker-class", "gthread", "--keep-alive", "75"]


@dataclass
class Variant:
    name: str
    label: str
    env: dict[str, str] = field(default_factory=dict)

    def command(self, port: int) -> list[str]:
        if self.name.startswith("flotilla"):
            return serve_command("sample", port, workers=2)
        return [
            sys.executable,
            "-m",
            "gunicorn",
            *GUNICORN,
            "--bind",
            f"127.0.0.1:{port}",
            "--no-control-socket",
            f"bench.apps:{self.name}()",
        ]


VARIANTS = [
    Variant("bare", "Bare Flask"),
    Variant("stock", "Flask + stock OTel Flask instrumentation + prometheus_client"),
    Variant("flotilla", "Flotilla chassis (everything on, 100% sampling, file sink, JSON access log)"),
    Variant(
        "flotilla-recycling",
        "The same, recycling on (FLOTILLA_MAX_REQUESTS=2000, the old default)",
        {"FLOTILLA_MAX_REQUESTS": "2000", "FLOTILLA_MAX_REQUESTS_JITTER": "200"},
    ),
]


def measure(variant: Variant, workdir: Path) -> tuple[LoadResult, float]:
    from tests.support import free_port

    port = free_port()
    metrics_dir = workdir / f"prom-{variant.name}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "FLOTILLA_THREADS": "4",
        "FLOTILLA_MAX_REQUESTS": "0",
        "FLOTILLA_TRACE_SAMPLE_RATIO": "1.0",
        "FLOTILLA_TRACE_FILE": str(workdir / "flotilla-spans.jsonl"),
        "BENCH_TRACE_FILE": str(workdir / "stock-spans.jsonl"),
        **variant.env,
    }
    log = (workdir / f"{variant.name}.log").open("wb")
    proc = subprocess.Popen(variant.command(port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/ping"
        wait_http(url, proc)
        drive(url, seconds=2, connections=CONNECTIONS)  # warm-up: imports, lazy init, caches
        before = cpu_seconds(proc.pid)
        result = drive(url, seconds=SECONDS, connections=CONNECTIONS)
        used = cpu_seconds(proc.pid) - before
        return result, used / max(result.requests, 1) * 1e6
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def run() -> str:
    runs: dict[str, list[tuple[LoadResult, float]]] = {v.name: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="flotilla-bench-") as tmp:
        for round_no in range(ROUNDS):
            for variant in VARIANTS:
                result, cpu_us = measure(variant, Path(tmp))
                runs[variant.name].append((result, cpu_us))
                print(
                    f"  round {round_no + 1} {variant.name:9s} {result.rps:8.0f} req/s  {cpu_us:6.0f} us CPU/req"
                    f"  p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms",
                    flush=True,
                )
    med = {
        name: {
            "rps": statistics.median(r.rps for r, _ in rs),
            "p50": statistics.median(r.p50_ms for r, _ in rs),
            "p99": statistics.median(r.p99_ms for r, _ in rs),
            "cpu": statistics.median(c for _, c in rs),
        }
        for name, rs in runs.items()
    }
    bare = med["bare"]
    rows = [
        "| variant | requests/s | p50 ms | p99 ms | server CPU per request | CPU vs bare | throughput vs bare |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for v in VARIANTS:
        m = med[v.name]
        rows.append(
            f"| {v.label} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['cpu']:.0f} µs "
            f"| {m['cpu'] / bare['cpu']:.2f}x | {m['rps'] / bare['rps']:.0%} |"
        )
    ratio = med["flotilla"]["cpu"] / bare["cpu"]
    recycling = med["flotilla-recycling"]["cpu"] / med["flotilla"]["cpu"]
    vs_stock = med["flotilla"]["cpu"] / med["stock"]["cpu"]
    goal = "meets" if ratio <= 1.18 else "misses"
    load = "wrk" if shutil.which("wrk") else "a Python keep-alive load generator (wrk not installed)"
    return "\n".join(
        [
            f"Trivial JSON route (`GET /ping`), gunicorn 2 workers x 4 gthreads, keep-alive, on loopback; "
            f"load from {load} in another process with {CONNECTIONS} connections for {SECONDS:.0f} s per run "
            f"after a warm-up; {ROUNDS} rounds alternating the variants; medians. Server CPU per request is "
            f"utime+stime of the gunicorn master and workers divided by requests served.",
            "",
            *rows,
            "",
            f"**Where it stands:** in these runs the chassis cost {ratio:.2f}x bare Flask's CPU per request "
            f"(goal <= 1.18x: it {goal} it) and {vs_stock:.2f}x the stock setup's. On this shared machine "
            "CPU per request swung by up to 2x between identical runs of the same variant (neighbours' "
            "steal time lands on our processes), so read these medians with the instruction counts below, "
            "which do not move.",
            "",
            f"**Worker recycling:** with it on (a worker re-forked every 2,000 requests, about every "
            f"{2000 / max(med['flotilla-recycling']['rps'] / 2, 1):.0f} s per worker at this load) CPU per "
            f"request was {recycling:.2f}x the same chassis with it off, the default since issue 13.",
        ]
    )
