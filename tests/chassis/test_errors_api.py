"""problem+json for every error, request validation, and the generated OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest

PROBLEM = "application/problem+json"


def assert_problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status
    assert answer.mimetype == PROBLEM
    body = answer.json
    assert {"type", "title", "status", "instance", "request_id"} <= body.keys()
    assert body["status"] == status
    assert body["request_id"] == answer.headers["X-Request-Id"]
    return body


def test_404(client: Any) -> None:
    body = assert_problem(client.get("/missing"), 404)
    assert body["title"] == "Not Found"
    assert body["instance"] == "/missing"


def test_405_says_what_is_allowed(client: Any) -> None:
    answer = client.delete("/ping")
    assert_problem(answer, 405)
    assert "GET" in answer.headers["Allow"]


def test_413_for_a_body_over_the_cap(client: Any) -> None:
    # The platform fixture caps bodies at 1 KiB.
    assert_problem(client.post("/echo", json={"text": "x" * 2000}), 413)


def test_415_for_a_non_json_body(client: Any) -> None:
    body = assert_problem(
        client.post("/echo", data="text=hi", content_type="application/x-www-form-urlencoded"), 415
    )
    assert "application/json" in body["detail"]


def test_422_lists_every_invalid_field(client: Any) -> None:
    body = assert_problem(client.post("/echo", json={"text": "", "repeat": 99, "colour": "red"}), 422)
    fields = {e["field"]: e["type"] for e in body["errors"]}
    assert fields == {
        "body.text": "string_too_short",
        "body.repeat": "less_than_equal",
        "body.colour": "extra_forbidden",
    }


def test_unknown_query_parameter_is_rejected(client: Any) -> None:
    body = assert_problem(client.get("/hello/ann?shout=true&volume=11"), 422)
    assert [e["field"] for e in body["errors"]] == ["query.volume"]


def test_500_leaks_nothing(app: Any, client: Any) -> None:
    @app.get("/crash")
    def crash() -> None:
        raise KeyError("/etc/secrets/db-password")

    body = assert_problem(client.get("/crash"), 500)
    assert body["title"] == "Internal Server Error"
    text = str(body)
    assert "secrets" not in text and "KeyError" not in text and "Traceback" not in text


def test_problem_error_from_a_view(client: Any) -> None:
    body = assert_problem(client.get("/slow?seconds=99"), 400)
    assert body["title"] == "Too slow"


def test_valid_requests_pass(client: Any) -> None:
    assert client.post("/echo", json={"text": "hi", "repeat": 3}).json == {"text": "hi hi hi"}
    assert client.get("/hello/ann?shout=true").json == {"message": "HELLO, ANN!"}


def test_openapi_document_is_generated_from_routes_and_models(client: Any) -> None:
    doc = client.get("/openapi.json").json
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "Sample service"
    assert {"/hello/{name}", "/echo", "/slow", "/ping"} <= doc["paths"].keys()
    echo = doc["paths"]["/echo"]["post"]
    assert echo["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/EchoBody")
    assert "422" in echo["responses"]
    schema = doc["components"]["schemas"]["EchoBody"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["repeat"]["maximum"] == 10
    params = {p["name"]: p["in"] for p in doc["paths"]["/hello/{name}"]["get"]["parameters"]}
    assert params == {"name": "path", "shout": "query"}


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/metrics", "/openapi.json"])
def test_platform_endpoints_exist(client: Any, path: str) -> None:
    assert client.get(path).status_code == 200
