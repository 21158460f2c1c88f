"""The OpenAPI document a chassis app serves is valid (openapi-spec-validator) and tells the truth about
errors: every error response is problem+json, and the chassis' own refusals (400, 401/403 for a
guarded view, 404 for a path parameter, 413/415 for a body, 422) are documented where they can occur.

The store's documents are checked on the running stack (tests/e2e/test_store.py)."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate
from pydantic import Field

from flotilla.api import Body, Model, create_api
from flotilla.errors import Problems
from flotilla.principal import require

PROBLEM_JSON = "application/problem+json"


class ItemPath(Model):
    item_id: int = Field(ge=1)


class NewItem(Body):
    name: str = Field(min_length=1, max_length=50)
    count: int = Field(1, ge=1)


class Pong(Model):
    ok: bool


class Item(Model):
    name: str
    count: int


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_api("doc-test")
    Problems(app)

    @app.get("/ping", responses={200: Pong})
    def ping() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/items/<int:item_id>", responses={200: Item})
    def get_item(path: ItemPath) -> dict[str, Any]:
        return {"name": "x", "count": path.item_id}

    @app.post("/items", responses={201: Item, 409: None})
    @require(lambda: "a-secret-of-enough-length-for-tests", "items")
    def add_item(body: NewItem) -> tuple[dict[str, Any], int]:
        return body.model_dump(), 201

    doc: dict[str, Any] = app.api_doc
    return doc


def statuses(operation: dict[str, Any]) -> set[str]:
    return set(operation["responses"])


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)  # raises on an invalid document (e.g. securitySchemes: null)
    assert document["components"].get("securitySchemes", {}) is not None


def test_every_error_response_is_problem_json(document: dict[str, Any]) -> None:
    seen = 0
    for item in document["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if status == "default" or int(status) >= 400:
                    assert list(response["content"]) == [PROBLEM_JSON], (status, operation["operationId"])
                    seen += 1
    assert seen >= 10


def test_the_chassis_refusals_are_documented_where_they_can_happen(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert statuses(paths["/ping"]["get"]) == {"200", "default"}
    assert statuses(paths["/items/{item_id}"]["get"]) == {"200", "404", "422", "default"}
    add = paths["/items"]["post"]
    assert statuses(add) == {"201", "400", "401", "403", "409", "413", "415", "422", "default"}
    assert add["security"] == [{"gatewayPrincipal": []}]
    assert document["components"]["securitySchemes"]["gatewayPrincipal"]["in"] == "header"
    assert "security" not in paths["/ping"]["get"]


def test_a_422_is_documented_as_a_field_list_or_a_plain_problem(document: dict[str, Any]) -> None:
    schema = document["paths"]["/items"]["post"]["responses"]["422"]["content"][PROBLEM_JSON]["schema"]
    refs = {alternative["$ref"].rsplit("/", 1)[1] for alternative in schema["anyOf"]}
    assert refs == {"ValidationProblem", "Problem"}
    problem = document["components"]["schemas"]["Problem"]
    assert problem["required"] == ["type", "title", "status"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "mug", "count": "2"}, "body.count"),  # a string is not an integer in JSON
        ({"name": "mug", "count": True}, "body.count"),  # nor is a boolean
        ({"name": "mug", "count": 2.5}, "body.count"),
        ({"name": "mu\x00g"}, "body.name"),  # Postgres text can't hold a NUL
        ({"name": "bell\x07"}, "body.name"),
    ],
)
def test_a_json_body_is_typed_strictly_and_holds_no_control_characters(
    body: dict[str, Any], field: str
) -> None:
    app = create_api("strict-test")
    Problems(app)

    @app.post("/items", responses={201: Item})
    def add_item(body: NewItem) -> tuple[dict[str, Any], int]:
        return body.model_dump(), 201

    client = app.test_client()
    answer = client.post("/items", json=body)
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert answer.mimetype == PROBLEM_JSON
    assert [e["field"] for e in answer.json["errors"]] == [field]
    assert client.post("/items", json={"name": "tab\tand\nnewline", "count": 2}).status_code == 201
