"""The sample service under real gunicorn: multi-worker metrics, JSON logs with trace ids, drain."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import serve

pytestmark = pytest.mark.slow

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def counter(text: str, route: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_server_requests_total" and sample.labels["route"] == route:
                total += sample.value
    return total


def test_two_workers_metrics_logs_and_traces(tmp_path: Path) -> None:
    with serve("sample", tmp_path, workers=2) as server:
        metrics_dir = tmp_path / f"metrics-{server.port}"
        sent = 0
        # New connection per request, until both workers have served some (bounded).
        while sent < 400:
            with requests.Session() as session:
                assert session.get(server.url + "/ping", headers={"Connection": "close"}).status_code == 200
            sent += 1
            if sent >= 40 and len(list(metrics_dir.glob("counter_*.db"))) >= 2:
                break
        assert len(list(metrics_dir.glob("counter_*.db"))) == 2, "both workers should have counted requests"
        scrape = requests.get(server.url + "/metrics").text
        assert counter(scrape, "/ping") == sent

        answer = requests.get(
            server.url + "/hello/ann", headers={"traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01"}
        )
        assert answer.status_code == 200
        server.terminate()
        assert server.wait() == 0
    lines = server.logs()
    (hello,) = [line for line in lines if line.get("route") == "/hello/<name>"]
    assert hello["trace_id"] == TRACE_ID
    assert hello["request_id"] == answer.headers["X-Request-Id"]
    assert {line["logger"] for line in lines} >= {"gunicorn.error", "flotilla.access"}
    assert all(line["service"] == "sample" for line in lines)
    assert not any(line["logger"] == "gunicorn.access" for line in lines)


def test_sigterm_drains_while_in_flight_request_finishes(tmp_path: Path) -> None:
    with serve("sample", tmp_path, workers=2, env={"FLOTILLA_DRAIN_SECONDS": "2"}) as server:
        result: dict[str, object] = {}

        def slow_call() -> None:
            answer = requests.get(server.url + "/slow?seconds=3", timeout=30)
            result["status"] = answer.status_code
            result["body"] = answer.json()

        caller = threading.Thread(target=slow_call)
        caller.start()
        # Wait until the slow request is being handled (in-flight gauge), then stop the server.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            scrape = requests.get(server.url + "/metrics").text
            if 'http_server_requests_in_flight{service="sample"} 2.0' in scrape:
                break
            time.sleep(0.05)
        assert requests.get(server.url + "/readyz").status_code == 200
        server.terminate()
        statuses = set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and 503 not in statuses:
            try:
                statuses.add(requests.get(server.url + "/readyz", timeout=2).status_code)
            except requests.ConnectionError:
                break
            time.sleep(0.05)
        assert 503 in statuses, "readyz should turn 503 as soon as SIGTERM arrives"
        caller.join(timeout=30)
        assert result == {"status": 200, "body": {"message": "done after 3.0s"}}
        assert server.wait(timeout=30) == 0
