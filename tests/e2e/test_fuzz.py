"""Property-based API tests: every operation of every service's OpenAPI document, and of the gateway's,
fuzzed with schemathesis on the real local stack (Postgres, Redis, the AWS emulator, gunicorn).

Each operation gets valid and invalid requests (schemathesis' positive and negative modes), bounded by
``FUZZ_EXAMPLES`` per operation and mode. A response fails when it is a 5xx, when its status is not
documented, when it is an error that is not ``application/problem+json``, when it does not match its
documented schema, or when invalid data is accepted. Through the gateway most requests carry a dev
token with every scope (the rest carry what schemathesis makes up, which must be refused cleanly);
direct to a service they carry nothing or the gateway's signed identity, as the gateway would send it.

The figures of a run (cases, statuses, 5xx found) are written to ``$FLOTILLA_FUZZ_REPORT`` when set
(docs/security.md quotes the last one).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from flotilla_dev.issuer import DevIssuer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.support import running_store
from tests.localstack.support import Stack

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localstack")]

FUZZ_EXAMPLES = int(os.environ.get("FLOTILLA_FUZZ_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
PROBLEM_JSON = "application/problem+json"
CREDENTIALS = ("authorization", "x-api-key")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Its own stack: fuzzing creates and deletes catalog entries the other end-to-end tests count.
    with running_store(tmp_path_factory, "fuzz") as stack:
        yield stack


class Fuzz:
    """Runs every operation of one document and keeps what it saw."""

    def __init__(self, base_url: str, headers_for: Any) -> None:
        self.base_url = base_url
        self.headers_for = headers_for
        self.session = requests.Session()
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []

    def run(self, schema: Any) -> None:
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                with contextlib.suppress(Unsatisfiable):  # nothing to make invalid: no parameters
                    self._fuzz(operation, mode)

    def _fuzz(self, operation: Any, mode: GenerationMode) -> None:
        checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])
        seen = 0

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=not os.environ.get("FLOTILLA_FUZZ_EXPLORE"),  # same cases each run unless exploring
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def one(case: Any) -> None:
            nonlocal seen
            seen += 1
            headers = self.headers_for(case, seen)
            if headers is not None:
                case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() not in CREDENTIALS}
            response = case.call(base_url=self.base_url, session=self.session, headers=headers, timeout=15)
            self.statuses[response.status_code] += 1
            problems = []
            content_type = _header(response, "content-type")
            if response.status_code >= 400 and not content_type.startswith(PROBLEM_JSON):
                problems.append(f"error not problem+json: {content_type!r}")
            try:
                case.validate_response(response, checks=checks)
            except BaseException as failure:  # schemathesis raises a group of every failed check
                problems.append(str(failure).split("\n\nReproduce with")[0][:1500])
            if problems:
                self.failures.append(
                    f"{mode.value} {case.method} {case.formatted_path} -> "
                    f"{response.status_code}: {' | '.join(problems)}"
                )

        one()

    @property
    def cases(self) -> int:
        return sum(self.statuses.values())


def _header(response: Any, name: str) -> str:
    """One header of schemathesis' response (a dict of lists, names in lower case)."""
    for key, values in response.headers.items():
        if key.lower() == name:
            return str(values[0] if isinstance(values, list) else values)
    return ""


def _report(name: str, fuzz: Fuzz) -> None:
    path = os.environ.get("FLOTILLA_FUZZ_REPORT")
    if not path:
        return
    report = Path(path)
    data: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}
    data[name] = {
        "cases": fuzz.cases,
        "server_errors": sum(n for status, n in fuzz.statuses.items() if status >= 500),
        "failures": len(fuzz.failures),
        "statuses": {str(k): v for k, v in sorted(fuzz.statuses.items())},
        "examples_per_operation_and_mode": FUZZ_EXAMPLES,
    }
    report.write_text(json.dumps(data, indent=2) + "\n")


def _assert_clean(name: str, fuzz: Fuzz) -> None:
    _report(name, fuzz)
    assert fuzz.cases > 0
    assert fuzz.failures == [], f"{len(fuzz.failures)} failing cases:\n" + "\n".join(fuzz.failures[:15])


def test_the_gateway_holds_under_fuzzing(store: Stack) -> None:
    issuer = DevIssuer(store.state_dir / "dev-issuer", url=store.info["dev_issuer"])
    bearer = {"Authorization": f"Bearer {issuer.issue('fuzzer', ['admin', 'cart'])}"}
    schema = schemathesis.openapi.from_url(store.info["gateway"] + "/openapi.json")
    # Two cases in three signed in with every scope (deep into the services), the third with whatever
    # credentials schemathesis generates (which must be refused as documented).
    fuzz = Fuzz(store.info["gateway"], lambda case, n: bearer if n % 3 else None)
    fuzz.run(schema)
    _assert_clean("gateway", fuzz)
    assert fuzz.statuses[401] > 0 and sum(n for s, n in fuzz.statuses.items() if s < 300) > 0


@pytest.mark.parametrize("service", ["catalog", "cart"])
def test_each_service_holds_under_fuzzing_of_its_own_document(store: Stack, service: str) -> None:
    url = store.info["services"][service]
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    fuzz = Fuzz(url, lambda case, n: None)
    fuzz.run(schema)
    _assert_clean(service, fuzz)
