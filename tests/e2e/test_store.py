"""The store end to end: ``flotilla up`` as ``make run`` starts it, driven over HTTP through the gateway only.

One stack for the module (temp state dir, free ports, so a developer's running stack is never
touched): list products, add one to a cart with a dev token, read the cart back, and follow one
trace id through the gateway, cart and catalog logs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from flotilla_dev.issuer import DevIssuer

from tests.e2e.support import STORE, running_store
from tests.localstack.support import Stack

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localstack")]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_store(tmp_path_factory) as stack:
        yield stack


def token(stack: Stack, subject: str, *scopes: str) -> str:
    issuer = DevIssuer(stack.state_dir / "dev-issuer", url=stack.info["dev_issuer"])
    return issuer.issue(subject, scopes)


def gateway(stack: Stack, path: str) -> str:
    return f"{stack.info['gateway']}/api/v1{path}"


def test_products_are_listed_through_the_gateway(store: Stack) -> None:
    answer = requests.get(gateway(store, "/catalog/products"), params={"limit": 5}, timeout=10)
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert len(items) == 5  # the seed ran
    assert all(item["sku"] and item["price_cents"] > 0 for item in items)


def test_a_cart_needs_a_token(store: Stack) -> None:
    answer = requests.get(gateway(store, "/cart"), timeout=10)
    assert answer.status_code == 401
    assert answer.headers["Content-Type"].startswith("application/problem+json")


def test_services_registered_themselves_in_the_emulators_cloud_map(store: Stack) -> None:
    from flotilla_dev.localstack.stack import CLOUDMAP_NAMESPACE

    from flotilla.discovery.cloudmap import CloudMapResolver  # the chassis' own resolver reads them back

    client = boto3.client(
        "servicediscovery",
        endpoint_url=store.info["emulator"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(inject_host_prefix=False),
    )
    resolver = CloudMapResolver(client, namespace=CLOUDMAP_NAMESPACE)
    for name in STORE:
        assert resolver.resolve(name) == store.info["services"][name], name


def test_add_to_cart_then_read_it_back_and_follow_one_trace(store: Stack) -> None:
    sku = requests.get(gateway(store, "/catalog/products"), params={"limit": 1}, timeout=10).json()["items"][
        0
    ]["sku"]
    headers = {"Authorization": f"Bearer {token(store, 'alice', 'cart')}"}

    added = requests.post(
        gateway(store, "/cart/items"), json={"sku": sku, "quantity": 2}, headers=headers, timeout=10
    )
    assert added.status_code == 200, added.text
    # requests folds repeated headers with ", "; the gateway currently sends X-Request-Id twice.
    request_id = (added.headers.get("X-Request-Id") or "").split(",")[0].strip() or None

    cart = requests.get(gateway(store, "/cart"), headers=headers, timeout=10)
    assert cart.status_code == 200, cart.text
    assert [(line["sku"], line["quantity"]) for line in cart.json()["items"]] == [(sku, 2)]

    # Someone else's cart is not alice's.
    bob = {"Authorization": f"Bearer {token(store, 'bob', 'cart')}"}
    assert requests.get(gateway(store, "/cart"), headers=bob, timeout=10).json()["items"] == []

    trace_id = _gateway_trace(store, "POST", request_id)
    deadline = time.monotonic() + 5
    while True:
        where = {name: _has_trace(store.logs(name), trace_id) for name in STORE}
        if all(where.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert where == {"gateway": True, "catalog": True, "cart": True}, trace_id
    # Spans reach the shared file in batches (every few seconds): what `flotilla traces` shows.
    deadline = time.monotonic() + 15
    while (found := _spans_in(store.state_dir / "traces.jsonl", trace_id)) < set(STORE):
        assert time.monotonic() < deadline, f"spans of {trace_id} only from {found}"
        time.sleep(0.25)


def _gateway_trace(stack: Stack, method: str, request_id: str | None) -> str:
    for line in reversed(stack.logs("gateway")):
        if (
            line.get("logger") != "flotilla.access"
            or line.get("method") != method
            or not line.get("trace_id")
        ):
            continue
        if request_id is None or line.get("request_id") == request_id:
            return str(line["trace_id"])
    raise AssertionError(f"no {method} access line with a trace id in the gateway log")


def _has_trace(lines: list[dict[str, Any]], trace_id: str) -> bool:
    return any(line.get("trace_id") == trace_id for line in lines)


def _spans_in(trace_file: Path, trace_id: str) -> set[str]:
    """Services that wrote a span of ``trace_id`` to the shared span file (``flotilla traces`` reads it)."""
    import json

    services: set[str] = set()
    if not trace_file.exists():
        return services
    for line in trace_file.read_text().splitlines():
        if trace_id in line:
            span = json.loads(line)
            resource = span.get("resource", {})
            attributes = resource.get("attributes", resource) if isinstance(resource, dict) else {}
            services.add(attributes.get("service.name") or span.get("service") or "?")
    return services


def test_every_document_is_valid_openapi(store: Stack) -> None:
    from openapi_spec_validator import validate

    for name, url in store.info["services"].items():
        document = requests.get(f"{url}/openapi.json", timeout=10).json()
        validate(document)  # raises with the reason: e.g. securitySchemes: null
        assert document["paths"], name


def test_a_created_category_is_where_its_location_says(store: Stack) -> None:
    admin = {"Authorization": f"Bearer {token(store, 'ops', 'admin')}"}
    created = requests.post(
        gateway(store, "/catalog/categories"),
        json={"slug": "e2e-tea", "name": "Tea"},
        headers=admin,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    assert location == "/api/v1/catalog/categories/e2e-tea"  # the gateway's path, not the service's
    found = requests.get(store.info["gateway"] + location, timeout=10)
    assert found.status_code == 200, found.text
    assert found.json() == {"slug": "e2e-tea", "name": "Tea", "description": "", "product_count": 0}


def test_options_on_a_product_says_what_the_product_takes(store: Stack) -> None:
    answer = requests.options(gateway(store, "/catalog/products/COF-0001"), timeout=10)
    assert answer.status_code == 200, answer.text
    allowed = {method.strip() for method in answer.headers["Allow"].split(",")}
    assert allowed == {"GET", "HEAD", "PATCH", "DELETE", "OPTIONS"}  # no PUT, no POST
