"""payments' OpenAPI document: valid (openapi-spec-validator), and true to what the service answers."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from openapi_spec_validator import validate

PROBLEM_JSON = "application/problem+json"
POSTS = {
    "/payments/authorizations": {"201", "400", "402", "409", "422", "500", "503", "504"},
    "/payments/authorizations/{authorization_id}/capture": {"200", "400", "404", "409", "422", "503", "504"},
    "/payments/authorizations/{authorization_id}/void": {"200", "400", "404", "409", "422", "503", "504"},
}


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    found: dict[str, Any] = answer.json
    return found


def test_the_document_is_valid(document: dict[str, Any]) -> None:
    validate(document)


def test_it_lists_every_operation(document: dict[str, Any]) -> None:
    operations = {(path, method) for path, item in document["paths"].items() for method in item}
    assert operations == {
        ("/payments/authorizations", "post"),
        ("/payments/authorizations", "get"),
        ("/payments/authorizations/{authorization_id}", "get"),
        ("/payments/authorizations/{authorization_id}/capture", "post"),
        ("/payments/authorizations/{authorization_id}/void", "post"),
    }


@pytest.mark.parametrize("path", sorted(POSTS))
def test_every_post_requires_the_key_and_documents_its_answers(document: dict[str, Any], path: str) -> None:
    operation = document["paths"][path]["post"]
    [header] = [p for p in operation["parameters"] if p["in"] == "header"]
    assert (header["name"], header["required"]) == ("Idempotency-Key", True)
    assert POSTS[path] <= set(operation["responses"])
    for status, response in operation["responses"].items():
        if status == "default" or int(status) >= 400:
            assert set(response["content"]) == {PROBLEM_JSON}, (path, status)
    assert operation["security"] == [{"gatewayPrincipal": []}]


def test_no_schema_can_carry_a_card_number_out(document: dict[str, Any]) -> None:
    authorization = document["components"]["schemas"]["Authorization"]
    assert "card" in authorization["properties"]
    card = document["components"]["schemas"]["Card"]
    assert set(card["properties"]) == {"brand", "last4"}
