"""Routing, header hygiene both ways, limits, circuit breaking, CORS, security headers and the
aggregated API document, against real upstream servers on loopback."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest
import requests

from tests.gateway.helpers import assert_problem, bearer

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def url(gateway):
    return gateway(cors_origins=["https://shop.example.com"])


def raw_get(url: str, path: str, headers: list[tuple[str, str]]) -> tuple[int, list[tuple[str, str]], bytes]:
    """A GET with exactly these headers (requests would rewrite Connection and friends)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.putrequest("GET", path, skip_accept_encoding=True)
    for name, value in headers:
        conn.putheader(name, value)
    conn.endheaders()
    answer = conn.getresponse()
    result = answer.status, answer.getheaders(), answer.read()
    conn.close()
    return result


def test_routes_by_version_and_service_to_the_mapped_upstream_path(url):
    v1 = requests.get(url + "/api/v1/catalog/products/42?q=red%20shoes&page=2").json()
    assert (v1["service"], v1["path"]) == ("catalog", "/products/42?q=red%20shoes&page=2")
    v2 = requests.get(url + "/api/v2/catalog/products/42").json()
    assert (v2["service"], v2["path"]) == ("catalog-v2", "/v2/products/42")
    root = requests.get(url + "/api/v1/catalog").json()
    assert root["path"] == "/"
    prefixed_root = requests.get(url + "/api/v2/catalog").json()
    assert prefixed_root["path"] == "/v2"  # the prefix itself, no trailing slash


@pytest.mark.parametrize("path", ["/api/v3/catalog/products", "/api/v1/orders/1", "/api/latest/catalog"])
def test_an_unknown_version_or_service_is_404(url, path):
    assert_problem(requests.get(url + path), 404)


def test_non_ascii_header_values_are_forwarded_as_the_bytes_that_came(url):
    # http.client sends str values as latin-1: encode UTF-8 ourselves so the wire carries UTF-8 bytes.
    agent, note = "Mozilla/5.0 \u2713", "caf\u00e9"
    status, _, body = raw_get(
        url,
        "/api/v1/catalog/products",
        [
            ("Host", "gw"),
            ("User-Agent", agent.encode().decode("latin-1")),
            ("X-Note", note.encode().decode("latin-1")),
        ],
    )
    assert status == 200, body
    seen = json.loads(body)["headers"]
    # The upstream (WSGI, latin-1 decoded) sees exactly the caller's bytes.
    assert seen["User-Agent"].encode("latin-1").decode() == agent
    assert seen["X-Note"].encode("latin-1").decode() == note


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/catalog/metrics",
        "/api/v1/catalog/readyz",
        "/api/v1/catalog/livez",
        "/api/v1/catalog/openapi.json",
        "/api/v1/catalog//metrics",
        "/api/v1/catalog/metrics/",
        "/api/v1/catalog/%6detrics",
    ],
)
def test_a_services_internal_endpoints_are_not_reachable_through_the_gateway(url, path):
    status, headers, body = raw_get(url, path, [("Host", "gw")])
    if status == 308:  # Flask merges doubled slashes by redirecting to the canonical path: follow it
        location = urlsplit(dict(headers)["Location"]).path
        assert location == path.replace("//", "/")
        status, _, body = raw_get(url, location, [("Host", "gw")])
    assert status == 404, body
    assert json.loads(body)["status"] == 404
    # A path that merely contains the word still goes through.
    assert requests.get(url + "/api/v1/catalog/products/metrics").status_code == 200


def test_dot_segments_cannot_climb_out_of_the_route(url):
    status, _, body = raw_get(url, "/api/v2/catalog/%2e%2e/admin", [("Host", "gw")])
    assert status == 400, body


def test_hop_by_hop_credentials_and_spoofed_identity_headers_are_stripped_towards_the_upstream(url):
    status, _, body = raw_get(
        url,
        "/api/v1/catalog/products",
        [
            ("Host", "shop.example.com"),
            ("Connection", "keep-alive, X-Hop-Custom"),
            ("X-Hop-Custom", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Trailer", "X-Checksum"),
            ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
            ("X-Flotilla-Subject", "mallory"),
            ("X-Flotilla-Scopes", "admin"),
            ("x-flotilla-signature", "forged"),
            ("X-Forwarded-For", "6.6.6.6"),
            ("Cookie", "session=abc"),
            ("X-End-To-End", "kept"),
            ("traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-01"),
            ("X-Request-Id", "client-req-1"),
        ],
    )
    assert status == 200, body
    seen = {k.lower(): v for k, v in json.loads(body)["headers"].items()}
    for name in ("x-hop-custom", "keep-alive", "te", "trailer", "proxy-authorization", "cookie"):
        assert name not in seen, name
    assert not [name for name in seen if name.startswith("x-flotilla-") and name != "x-flotilla-deadline-ms"]
    assert seen["x-end-to-end"] == "kept"
    assert seen["x-forwarded-for"] == "127.0.0.1"  # the client's own claim is not believed
    assert seen["x-forwarded-prefix"] == "/api/v1/catalog"
    assert seen["traceparent"].split("-")[1] == TRACE_ID  # the same trace, a gateway span as parent
    assert seen["x-request-id"] == "client-req-1"


def test_hop_by_hop_and_identity_headers_are_stripped_from_the_answer(url):
    query = "answer-Keep-Alive=timeout%3D5&answer-Proxy-Authenticate=Basic&answer-X-Flotilla-Subject=x&answer-X-Kept=1"
    answer = requests.get(f"{url}/api/v1/catalog/items?{query}")
    assert answer.status_code == 200
    assert answer.headers["X-Kept"] == "1"
    for name in ("Keep-Alive", "Proxy-Authenticate", "X-Flotilla-Subject"):
        assert name not in answer.headers


def test_bodies_over_the_cap_are_413(gateway, issuer):
    url = gateway(platform={"max_body_bytes": 1000})
    token = bearer(issuer.issue("alice", ["cart"]))
    assert requests.post(url + "/api/v1/cart/items", data=b"x" * 900, headers=token).status_code == 200
    assert_problem(requests.post(url + "/api/v1/cart/items", data=b"x" * 5000, headers=token), 413)


def _chunks(total: int, size: int = 4096):
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"x" * piece


def test_a_chunked_body_over_the_cap_is_413_and_one_under_it_arrives_whole(gateway, issuer):
    # No Content-Length: the cap used to cut the body and forward what was left.
    url = gateway(platform={"max_body_bytes": 100_000})
    token = bearer(issuer.issue("alice", ["cart"]))
    over = requests.post(url + "/api/v1/cart/items", data=_chunks(200_000), headers=token)
    assert_problem(over, 413)
    under = requests.post(url + "/api/v1/cart/items", data=_chunks(90_000), headers=token)
    assert under.status_code == 200, under.text
    assert len(under.json()["body"]) == 90_000


def test_a_down_upstream_fails_fast_with_503_once_its_circuit_is_open(url):
    first = [requests.get(url + "/api/v1/down/anything") for _ in range(2)]
    assert [r.status_code for r in first] == [502, 502]
    opened = requests.get(url + "/api/v1/down/anything")
    body = assert_problem(opened, 503)
    assert int(opened.headers["Retry-After"]) >= 1
    assert body["type"] == "urn:flotilla:problem:circuit-open"
    assert requests.get(url + "/api/v1/catalog/still-fine").status_code == 200


def test_cors_preflight_for_an_allowed_origin(url):
    answer = requests.options(
        url + "/api/v1/cart/items",
        headers={
            "Origin": "https://shop.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-evil",
        },
    )
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert answer.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    assert "Access-Control-Allow-Credentials" not in answer.headers
    assert "Origin" in answer.headers["Vary"]


def test_cors_refuses_other_origins_and_decorates_allowed_answers(url):
    denied = requests.options(
        url + "/api/v1/catalog/x",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert_problem(denied, 403)
    assert "Access-Control-Allow-Origin" not in denied.headers
    plain = requests.get(url + "/api/v1/catalog/x", headers={"Origin": "https://shop.example.com"})
    assert plain.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert "RateLimit-Remaining" in plain.headers["Access-Control-Expose-Headers"]
    other = requests.get(url + "/api/v1/catalog/x", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_security_headers_on_answers_and_errors_and_hsts_only_over_https(gateway, url):
    for answer in (requests.get(url + "/api/v1/catalog/x"), requests.get(url + "/api/v9/x/y")):
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert "Strict-Transport-Security" not in answer.headers
    behind_alb = gateway(trusted_proxies=1)
    tls = requests.get(behind_alb + "/api/v1/catalog/x", headers={"X-Forwarded-Proto": "https"})
    assert tls.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    seen = tls.json()["headers"]
    assert seen["X-Forwarded-Proto"] == "https"


def test_the_client_address_comes_from_the_trusted_proxy_only(gateway):
    url = gateway(trusted_proxies=1)
    seen = requests.get(url + "/api/v1/catalog/x", headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9"}).json()
    assert seen["headers"]["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"


def test_openapi_aggregates_upstreams_under_their_prefixes_and_notes_the_missing(url):
    doc = requests.get(url + "/openapi.json").json()
    paths = doc["paths"]
    assert "/api/v1/catalog/items/{item_id}" in paths
    assert "/api/v2/catalog/items" in paths and "/api/v2/catalog/items/{item_id}" not in paths
    item = paths["/api/v1/catalog/items/{item_id}"]["get"]
    assert item["security"] == []  # catalog reads are public
    assert item["tags"] == ["v1/catalog"]
    ref = item["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/v1.catalog.Item"
    assert "v1.catalog.Item" in doc["components"]["schemas"]
    assert paths["/api/v1/cart/items/{item_id}"]["get"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert doc["x-flotilla-unavailable"] == [
        {"route": "/api/v1/down", "upstream": "down", "error": "Upstream unreachable"}
    ]
    assert "/api/v1/down" in doc["info"]["description"]


def test_without_a_principal_secret_only_a_local_gateway_starts_and_it_forwards_no_caller(gateway, issuer):
    from flotilla.config import ConfigError

    with pytest.raises(ConfigError, match="FLOTILLA_PRINCIPAL_SECRET"):
        gateway(platform={"principal_secret": None, "env": "prod"})
    url = gateway(platform={"principal_secret": None, "env": "local"})
    seen = requests.get(url + "/api/v1/cart/items", headers=bearer(issuer.issue("alice", ["cart"]))).json()
    assert not [name for name in seen["headers"] if name.lower().startswith("x-flotilla-s")]
