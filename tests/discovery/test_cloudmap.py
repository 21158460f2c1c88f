"""Cloud Map discovery and self-registration against a real moto server."""

from __future__ import annotations

import logging
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError
from moto.server import ThreadedMotoServer

from flotilla.aws import client as aws_client
from flotilla.clock import ManualClock
from flotilla.config import PlatformSettings
from flotilla.discovery import (
    CloudMapRegistration,
    CloudMapResolver,
    DiscoveryError,
    NoHealthyInstances,
    registration_from_settings,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def servicediscovery(aws_endpoint):
    return aws_client("servicediscovery", PlatformSettings(aws_endpoint_url=aws_endpoint), traced=False)


@pytest.fixture
def namespace(servicediscovery):
    """A fresh namespace per test: the moto server is shared by the whole session."""
    return f"ns-{uuid.uuid4().hex[:8]}.local"


def register(client, namespace, instance, port, **kwargs):
    registration = CloudMapRegistration(
        client,
        namespace=namespace,
        service="orders",
        instance_id=instance,
        address="127.0.0.1",
        port=port,
        create_missing=True,
        **kwargs,
    )
    registration.start()
    return registration


def test_register_discover_healthy_only_and_deregister(servicediscovery, namespace):
    first = register(servicediscovery, namespace, "orders-1", 8001)
    second = register(servicediscovery, namespace, "orders-2", 8002)
    third = register(servicediscovery, namespace, "orders-3", 8003)
    third.set_healthy(False)
    resolver = CloudMapResolver(servicediscovery, namespace, choice="round-robin")
    assert resolver.instances("orders") == ("http://127.0.0.1:8001", "http://127.0.0.1:8002")
    picks = {resolver.resolve("orders") for _ in range(4)}
    assert picks == {"http://127.0.0.1:8001", "http://127.0.0.1:8002"}

    first.stop()
    resolver.invalidate()
    assert resolver.instances("orders") == ("http://127.0.0.1:8002",)
    second.stop()
    resolver.invalidate()
    with pytest.raises(NoHealthyInstances):
        resolver.resolve("orders")
    third.set_healthy(True)
    resolver.invalidate()
    assert resolver.resolve("orders") == "http://127.0.0.1:8003"


def test_answers_are_cached_for_the_ttl(servicediscovery, namespace):
    register(servicediscovery, namespace, "orders-1", 8001)
    clock = ManualClock()
    resolver = CloudMapResolver(servicediscovery, namespace, ttl_seconds=10, clock=clock)
    assert resolver.instances("orders") == ("http://127.0.0.1:8001",)
    register(servicediscovery, namespace, "orders-2", 8002)
    clock.advance(9)
    assert resolver.instances("orders") == ("http://127.0.0.1:8001",)
    clock.advance(1)
    assert resolver.instances("orders") == ("http://127.0.0.1:8001", "http://127.0.0.1:8002")


def test_registration_without_create_missing_needs_the_namespace(servicediscovery, namespace):
    registration = CloudMapRegistration(
        servicediscovery, namespace=namespace, service="orders", instance_id="x", address="127.0.0.1", port=1
    )
    with pytest.raises(DiscoveryError, match="no Cloud Map namespace"):
        registration.start()


def test_registration_from_settings(monkeypatch, servicediscovery, namespace):
    assert registration_from_settings("orders", 8000, aws_client=servicediscovery) is None
    monkeypatch.setenv("FLOTILLA_DISCOVERY_REGISTER", "true")
    monkeypatch.setenv("FLOTILLA_DISCOVERY_REGISTER_CREATE_MISSING", "true")
    monkeypatch.setenv("FLOTILLA_DISCOVERY_CLOUDMAP_NAMESPACE", namespace)
    monkeypatch.setenv("K8S_POD_NAME", "orders-7d9f")
    monkeypatch.setenv("K8S_POD_IP", "10.0.3.7")
    with registration_from_settings("orders", 8000, aws_client=servicediscovery):
        resolver = CloudMapResolver(servicediscovery, namespace)
        assert resolver.resolve("orders") == "http://10.0.3.7:8000"
    resolver.invalidate()
    with pytest.raises(NoHealthyInstances):
        resolver.resolve("orders")


def test_last_known_good_is_kept_when_the_api_fails(caplog):
    """A moto server of its own, stopped mid-test: the resolver keeps answering from what it saw."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "servicediscovery",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        config=Config(inject_host_prefix=False, retries={"max_attempts": 1}, connect_timeout=1),
    )
    try:
        register(client, "lkg.local", "orders-1", 8001)
        clock = ManualClock()
        resolver = CloudMapResolver(client, "lkg.local", ttl_seconds=5, clock=clock)
        assert resolver.resolve("orders") == "http://127.0.0.1:8001"
    finally:
        server.stop()
    with caplog.at_level(logging.WARNING, logger="flotilla.discovery.cloudmap"):
        for _ in range(3):
            clock.advance(6)
            assert resolver.resolve("orders") == "http://127.0.0.1:8001"
    assert len([r for r in caplog.records if "last seen" in r.getMessage()]) == 1
    with pytest.raises(DiscoveryError, match="failed"):
        CloudMapResolver(client, "lkg.local").resolve("orders")


class ScriptedCloudMap:
    """A DiscoverInstances stand-in: answers with ``ports`` or, while ``down``, raises a botocore error."""

    def __init__(self, *ports: int) -> None:
        self.ports = list(ports)
        self.down = False
        self.calls = 0

    def discover_instances(self, **_: object) -> dict:
        self.calls += 1
        if self.down:
            raise EndpointConnectionError(endpoint_url="http://cloudmap.invalid")
        return {
            "Instances": [
                {"Attributes": {"AWS_INSTANCE_IPV4": "127.0.0.1", "AWS_INSTANCE_PORT": str(port)}}
                for port in self.ports
            ]
        }


def test_after_a_failed_refresh_the_api_is_asked_again_only_after_retry_seconds(caplog):
    api = ScriptedCloudMap(8001)
    clock = ManualClock()
    resolver = CloudMapResolver(api, "ns.local", ttl_seconds=10, retry_seconds=3, clock=clock)
    assert resolver.resolve("orders") == "http://127.0.0.1:8001"
    api.down = True
    clock.advance(10)
    with caplog.at_level(logging.INFO, logger="flotilla.discovery.cloudmap"):
        assert resolver.resolve("orders") == "http://127.0.0.1:8001"  # last known good
        assert api.calls == 2
        clock.advance(2.9)
        for _ in range(5):
            resolver.resolve("orders")
        assert api.calls == 2, "no call while the retry wait runs"
        clock.advance(0.1)
        resolver.resolve("orders")
        assert api.calls == 3, "asked again once the wait is over"
        api.down, api.ports = False, [8001, 8002]
        clock.advance(3)
        assert resolver.instances("orders") == ("http://127.0.0.1:8001", "http://127.0.0.1:8002")
        assert api.calls == 4
        clock.advance(9)
        resolver.resolve("orders")
        assert api.calls == 4, "a fresh answer is kept for the TTL again"
    messages = [(r.levelname, r.getMessage(), getattr(r, "upstream", None)) for r in caplog.records]
    assert [(level, upstream) for level, _, upstream in messages] == [
        ("WARNING", "orders"),
        ("INFO", "orders"),
    ]
    assert "last seen" in messages[0][1] and "available again" in messages[1][1]


def test_retry_seconds_is_at_most_the_ttl():
    assert CloudMapResolver(ScriptedCloudMap(), "ns.local", ttl_seconds=2, retry_seconds=5).retry_seconds == 2
