"""Load generation for benchmarks: wrk when installed, else a bounded Python keep-alive loop."""

from __future__ import annotations

import http.client
import re
import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def drive(url: str, seconds: float, connections: int) -> LoadResult:
    if shutil.which("wrk"):
        return _wrk(url, seconds, connections)
    return _python(url, seconds, connections)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _wrk(url: str, seconds: float, connections: int) -> LoadResult:
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(min(2, connections)),
            "-c",
            str(connections),
            "-d",
            f"{max(1, round(seconds))}s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    elapsed = re.search(r"requests in ([\d.]+)(\w+),", out)
    secs = float(elapsed.group(1)) * (60 if elapsed.group(2) == "m" else 1)  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        return float(m.group(1)) * _UNITS[m.group(2)]  # type: ignore[union-attr]

    return LoadResult(total, secs, pct("50"), pct("90"), pct("99"))


def _python(url: str, seconds: float, connections: int) -> LoadResult:
    parts = urlsplit(url)
    latencies: list[list[float]] = [[] for _ in range(connections)]
    stop_at = time.monotonic() + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            conn.request("GET", parts.path)
            conn.getresponse().read()
            latencies[i].append((time.perf_counter() - t0) * 1000)
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    flat = sorted(x for lat in latencies for x in lat)

    def pct(p: float) -> float:
        return flat[max(0, int(len(flat) * p) - 1)] if flat else 0.0

    return LoadResult(len(flat), elapsed, statistics.median(flat) if flat else 0.0, pct(0.9), pct(0.99))
