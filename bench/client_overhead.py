"""Client overhead: CPU per call of ``ServiceClient`` against a bare ``httpx.Client`` on loopback.

Both call ``GET /ping`` of the sample service under gunicorn (another process), so the client
process's own CPU time (``time.process_time``) is what each call costs the caller: for the
ServiceClient that is discovery, deadline, breaker, bulkhead, retry bookkeeping, span and metrics
on top of the same httpx call. Rounds alternate the variants and medians are reported, since this
shared machine's speed drifts between runs.

A second measurement uses httpx's in-memory ``MockTransport`` (no socket, no server): loopback
network CPU varies by more than the overhead itself, and without it the difference is the client
code alone.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench.proc import serve_command

TITLE = "HTTP client overhead per call (ServiceClient vs bare httpx)"

ROUNDS = 7
CALLS = 400
WARMUP = 100


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_sample(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "FLOTILLA_ACCESS_LOG": "false",
        "FLOTILLA_TRACE_FILE": str(tmp / "traces.jsonl"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
    }
    proc = subprocess.Popen(
        serve_command("sample", port, workers=1),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    give_up = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/livez", timeout=1):
                return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > give_up:
                proc.kill()
                raise RuntimeError("the sample service did not start") from None
            time.sleep(0.1)


def _measure(call: Callable[[], object], n: int) -> tuple[float, float]:
    """CPU and wall microseconds per call over ``n`` calls."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        call()
    return (time.process_time() - cpu0) / n * 1e6, (time.perf_counter() - wall0) / n * 1e6


def _alternate(
    variants: dict[str, Callable[[], object]], rounds: int, calls: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """CPU and wall µs per call of each variant, one entry per round; the order flips every round."""
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    wall: dict[str, list[float]] = {name: [] for name in variants}
    for call in variants.values():
        _measure(call, WARMUP)
    for i in range(rounds):
        order = list(variants.items())
        for name, call in order if i % 2 == 0 else reversed(order):
            c, w = _measure(call, calls)
            cpu[name].append(c)
            wall[name].append(w)
    return cpu, wall


def _in_memory() -> dict[str, list[float]]:
    import httpx

    from flotilla.discovery import StaticResolver
    from flotilla.http import ServiceClient
    from flotilla.http.policy import ClientSettings

    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"ok": True}))
    bare = httpx.Client(transport=transport)
    client = ServiceClient(
        settings=ClientSettings(), resolver=StaticResolver({"sample": "http://sample"}), transport=transport
    )
    try:
        cpu, _ = _alternate(
            {
                "bare httpx.Client": lambda: bare.get("http://sample/ping").raise_for_status(),
                "flotilla ServiceClient": lambda: client.get("sample", "/ping").raise_for_status(),
            },
            ROUNDS,
            2000,
        )
        return cpu
    finally:
        bare.close()
        client.close()


def run() -> str:
    import httpx

    from flotilla.discovery import StaticResolver
    from flotilla.http import ServiceClient
    from flotilla.http.policy import ClientSettings

    with tempfile.TemporaryDirectory() as tmp:
        proc, url = _start_sample(Path(tmp))
        bare = httpx.Client()
        client = ServiceClient(settings=ClientSettings(), resolver=StaticResolver({"sample": url}))
        variants: dict[str, Callable[[], object]] = {
            "bare httpx.Client": lambda: bare.get(url + "/ping").raise_for_status(),
            "flotilla ServiceClient": lambda: client.get("sample", "/ping").raise_for_status(),
        }
        try:
            cpu, wall = _alternate(variants, ROUNDS, CALLS)
        finally:
            bare.close()
            client.close()
            proc.kill()
            proc.wait(timeout=10)

    base_cpu = statistics.median(cpu["bare httpx.Client"])
    lines = [
        f"Client process CPU per `GET /ping` to the sample service (gunicorn, 1 worker) on loopback; "
        f"{ROUNDS} alternating rounds of {CALLS} calls per variant, medians. No tracer provider in the "
        "client process (spans are the OpenTelemetry API's no-op), metrics to a private registry.",
        "",
        "| Variant | CPU µs/call | Wall µs/call | CPU overhead |",
        "|---|---:|---:|---:|",
    ]
    for name in variants:
        c, w = statistics.median(cpu[name]), statistics.median(wall[name])
        overhead = "" if c == base_cpu else f"+{c - base_cpu:.0f} µs ({(c / base_cpu - 1) * 100:+.0f}%)"
        lines.append(f"| {name} | {c:.0f} | {w:.0f} | {overhead} |")
    spread = {name: f"{min(v):.0f} to {max(v):.0f}" for name, v in cpu.items()}
    lines += ["", "CPU µs/call range over rounds: " + "; ".join(f"{n}: {r}" for n, r in spread.items()) + "."]
    mem = _in_memory()
    mem_base = statistics.median(mem["bare httpx.Client"])
    mem_client = statistics.median(mem["flotilla ServiceClient"])
    lines += [
        "",
        f"Without the network (httpx `MockTransport`, {ROUNDS} alternating rounds of 2000 calls, medians): "
        f"bare httpx.Client {mem_base:.0f} µs/call, ServiceClient {mem_client:.0f} µs/call, so the client "
        f"code itself costs {mem_client - mem_base:.0f} µs of CPU per call.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
