"""Throttling accuracy over real HTTP: a burst of 10x the bucket admits the bucket (within 5%), in
Redis and in process, with a frozen clock so refill cannot blur the count; quotas; Redis outages."""

from __future__ import annotations

import hashlib
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from flotilla.clock import ManualClock
from tests.gateway.helpers import assert_problem, bearer
from tests.support import free_port

BURST = 20


def burst(urls: list[str], n: int, headers: dict[str, str]) -> list[requests.Response]:
    """``n`` requests at once, spread over ``urls`` (gateway replicas), 16 in flight."""
    with requests.Session() as session, ThreadPoolExecutor(16) as pool:
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=16)
        session.mount("http://", adapter)
        jobs = [
            pool.submit(session.get, urls[i % len(urls)] + "/api/v1/catalog/x", headers=headers)
            for i in range(n)
        ]
        return [job.result() for job in jobs]


@pytest.fixture(params=["memory", "redis"])
def backend(request) -> dict[str, str]:
    if request.param == "memory":
        return {}
    return {"redis_url": request.getfixturevalue("redis_url")}


def client_ip() -> dict[str, str]:
    """A fresh anonymous client (behind one trusted proxy), so runs never share a bucket."""
    return {"X-Forwarded-For": f"198.51.100.{uuid.uuid4().int % 250 + 1}, {uuid.uuid4()}"}


def test_a_burst_of_ten_times_the_limit_admits_the_limit(gateway, backend):
    clock = ManualClock()
    url = gateway(clock=clock, trusted_proxies=1, rate_limit={"burst": BURST, "perSecond": 1}, **backend)
    answers = burst([url], 10 * BURST, client_ip())
    admitted = sum(1 for a in answers if a.status_code == 200)
    # The issue allows 5%; with the clock frozen the bucket is exact, so hold it to that.
    assert admitted == BURST, admitted
    refused = [a for a in answers if a.status_code != 200]
    assert {a.status_code for a in refused} == {429}
    sample = refused[0]
    assert_problem(sample, 429)
    assert sample.headers["Retry-After"] == "1"
    assert sample.headers["RateLimit-Limit"] == str(BURST)
    assert sample.headers["RateLimit-Remaining"] == "0"
    assert sample.headers["RateLimit-Reset"] == str(BURST)


def test_replicas_share_one_bucket_in_redis(gateway, redis_url):
    clock = ManualClock()
    replicas = [
        gateway(
            clock=clock, trusted_proxies=1, redis_url=redis_url, rate_limit={"burst": BURST, "perSecond": 1}
        )
        for _ in range(3)
    ]
    answers = burst(replicas, 10 * BURST, client_ip())
    admitted = sum(1 for a in answers if a.status_code == 200)
    # The issue allows 5%; with the clock frozen the bucket is exact, so hold it to that.
    assert admitted == BURST, admitted


def test_the_bucket_refills_at_its_rate(gateway, backend):
    clock = ManualClock()
    url = gateway(clock=clock, trusted_proxies=1, rate_limit={"burst": 5, "perSecond": 2}, **backend)
    who = client_ip()
    assert sum(a.status_code == 200 for a in burst([url], 20, who)) == 5
    clock.advance(2)  # four tokens back
    assert sum(a.status_code == 200 for a in burst([url], 20, who)) == 4
    ok = requests.get(url + "/api/v1/catalog/x", headers=who)
    assert ok.status_code == 429


def test_buckets_are_per_client_and_per_route(gateway, issuer, backend):
    clock = ManualClock()
    url = gateway(clock=clock, rate_limit={"burst": 3, "perSecond": 1}, **backend)
    alice, bob = (bearer(issuer.issue(f"{name}-{uuid.uuid4()}", ["cart"])) for name in ("alice", "bob"))
    for who in (alice, bob):
        codes = [requests.get(url + "/api/v1/cart/items", headers=who).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
    # alice's catalog bucket is untouched by her cart requests
    assert requests.get(url + "/api/v1/catalog/items", headers=alice).status_code == 200
    remaining = requests.get(url + "/api/v1/catalog/items", headers=alice).headers["RateLimit-Remaining"]
    assert remaining == "1"


def test_api_key_daily_quota(gateway, backend):
    clock = ManualClock()
    key = f"key-{uuid.uuid4()}"
    keys = {
        f"robot-{uuid.uuid4().hex[:8]}": {"sha256": hashlib.sha256(key.encode()).hexdigest(), "dailyQuota": 3}
    }
    url = gateway(clock=clock, api_keys=keys, **backend)
    codes = [
        requests.get(url + "/api/v1/catalog/x", headers={"X-Api-Key": key}).status_code for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    over = requests.get(url + "/api/v1/catalog/x", headers={"X-Api-Key": key})
    body = assert_problem(over, 429)
    assert body["title"] == "Quota exhausted"
    assert 0 < int(over.headers["Retry-After"]) <= 86_400
    clock.advance(86_400)  # the next UTC day
    assert requests.get(url + "/api/v1/catalog/x", headers={"X-Api-Key": key}).status_code == 200


def test_redis_down_degrades_to_in_process_limits(gateway):
    clock = ManualClock()
    url = gateway(
        clock=clock, redis_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit={"burst": 5, "perSecond": 1}
    )
    answers = burst([url], 50, {})
    assert sum(a.status_code == 200 for a in answers) == 5
    assert {a.status_code for a in answers} == {200, 429}
    ready = requests.get(url + "/readyz").json()
    assert ready["status"] == "degraded"
    assert ready["checks"]["redis"]["state"] == "degraded"
