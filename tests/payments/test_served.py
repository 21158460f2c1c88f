"""payments under real gunicorn (``flotilla serve``, two workers) on a database migrated by the real
``flotilla migrate``: the API over HTTP, one authorization for one key across workers, and a worker
killed mid-request whose key a retry takes over once its lease runs out."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.catalog.support import SECRET, signed
from tests.data.support import fresh_database
from tests.payments.support import AUTHORIZATIONS, SLOW, body, held, key, orders, rows, with_key
from tests.support import FLOTILLA, ROOT, serve

pytestmark = pytest.mark.slow


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    with fresh_database(postgres_url) as url:
        # No principal secret, as the chart's first-install migration Job may run: it needs none.
        env = {k: v for k, v in os.environ.items() if k != "FLOTILLA_PRINCIPAL_SECRET"}
        done = subprocess.run(
            [*FLOTILLA, "migrate", "payments"],
            check=False,
            env={**env, "PAYMENTS_DATABASE_URL": url},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        yield url


def environment(database_url: str, **settings: str) -> dict[str, str]:
    return {
        "PAYMENTS_DATABASE_URL": database_url,
        "FLOTILLA_PRINCIPAL_SECRET": SECRET,
        **{f"PAYMENTS_{name.upper()}": value for name, value in settings.items()},
    }


def post(url: str, path: str, idempotency_key: str, json: object = None, **headers: str) -> requests.Response:
    sent = signed(with_key(orders(), idempotency_key, **headers), "payments", "POST", path)
    return requests.post(url + path, json=json, headers=sent, timeout=15)


def test_payments_served(database_url: str, tmp_path: Path) -> None:
    env = environment(database_url, fault_latency_ms="300", slow_card_seconds="3")
    with serve("payments", tmp_path, workers=2, env=env) as payments:
        created = post(payments.url, AUTHORIZATIONS, key(), body())
        assert created.status_code == 201, created.text
        captured = post(payments.url, created.headers["Location"] + "/capture", key())
        assert captured.json()["status"] == "CAPTURED"

        # One key, twelve requests at once, spread over both workers: one authorization.
        idempotency_key, sent = key(), body()
        answers: list[requests.Response] = []
        start = threading.Barrier(12)

        def send() -> None:
            start.wait()
            answers.append(post(payments.url, AUTHORIZATIONS, idempotency_key, sent))

        threads = [threading.Thread(target=send) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert [a.status_code for a in answers] == [201] * 12
        assert len({a.content for a in answers}) == 1
        assert (
            len([r for r in rows(database_url, "authorizations") if r["order_id"] == sent["order_id"]]) == 1
        )

        # The slow card, with less time than it takes: 504 at the caller's deadline, nothing kept.
        slow = post(payments.url, AUTHORIZATIONS, key(), body(SLOW), **{"X-Flotilla-Deadline-Ms": "800"})
        assert slow.status_code == 504
        assert slow.headers["Content-Type"] == "application/problem+json"
        assert len(rows(database_url, "authorizations")) == 2

        ready = requests.get(f"{payments.url}/readyz", timeout=5).json()
        assert ready["status"] == "ok" and ready["checks"]["database"]["state"] == "ok", ready
        metrics = requests.get(f"{payments.url}/metrics", timeout=5).text
        assert 'route="/payments/authorizations"' in metrics
        assert requests.get(f"{payments.url}/openapi.json", timeout=5).status_code == 200
        assert any(line.get("route") == "/payments/authorizations" for line in payments.logs())


def test_a_key_held_by_a_killed_worker_is_taken_over_after_its_lease(
    database_url: str, tmp_path: Path
) -> None:
    env = environment(
        database_url,
        fault_latency_ms="1500",
        slow_card_seconds="0",
        idempotency_lease_seconds="2",
        idempotency_wait_seconds="10",
    )
    idempotency_key, sent = key(), body()
    with serve("payments", tmp_path, env=env) as doomed:
        failed: list[BaseException] = []

        def first() -> None:
            try:
                post(doomed.url, AUTHORIZATIONS, idempotency_key, sent)
            except requests.RequestException as err:
                failed.append(err)

        caller = threading.Thread(target=first)
        caller.start()
        assert held(database_url, idempotency_key)["state"] == "in_progress"
        os.killpg(doomed.proc.pid, signal.SIGKILL)  # mid-request, before the provider answered
        caller.join(10)
        assert failed, "the killed server still answered"
    assert rows(database_url, "authorizations") == []
    with serve("payments", tmp_path, env=env) as restarted:
        retry = post(restarted.url, AUTHORIZATIONS, idempotency_key, sent)
        assert retry.status_code == 201, retry.text
        assert "Idempotent-Replayed" not in retry.headers
        again = post(restarted.url, AUTHORIZATIONS, idempotency_key, sent)
        assert (again.status_code, again.content) == (201, retry.content)
    assert len(rows(database_url, "authorizations")) == 1
