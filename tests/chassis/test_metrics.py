"""Prometheus metrics in one process (multi-worker behaviour is in test_gunicorn)."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def samples(client: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = client.get("/metrics").get_data(as_text=True)
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def labels(**kw: str) -> frozenset[tuple[str, str]]:
    return frozenset(kw.items())


def test_requests_are_counted_by_route_template_not_path(client: Any) -> None:
    for name in ("ann", "bob", "cy"):
        client.get(f"/hello/{name}")
    client.get("/hello/x?bogus=1")
    client.get("/no/such/page")
    got = samples(client)
    route = "/hello/<name>"
    assert (
        got[("http_server_requests_total", labels(service="sample", method="GET", route=route, status="200"))]
        == 3
    )
    assert (
        got[("http_server_requests_total", labels(service="sample", method="GET", route=route, status="422"))]
        == 1
    )
    assert (
        got[
            (
                "http_server_requests_total",
                labels(service="sample", method="GET", route="<unmatched>", status="404"),
            )
        ]
        == 1
    )
    assert not any("/hello/ann" in str(key) for key in got)
    count = got[
        ("http_server_request_duration_seconds_count", labels(service="sample", method="GET", route=route))
    ]
    assert count == 4


def test_in_flight_and_build_info(client: Any) -> None:
    got = samples(client)
    # The scrape itself is in flight while it renders.
    assert got[("http_server_requests_in_flight", labels(service="sample"))] == 1
    build = [key for key in got if key[0] == "flotilla_build_info"]
    assert len(build) == 1
    assert dict(build[0][1])["service"] == "sample"
