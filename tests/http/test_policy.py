"""The upstream policy contract: camelCase keys, defaults, typos rejected, schema file current."""

from __future__ import annotations

import json

import jsonschema
import pytest

from flotilla.config import ConfigError
from flotilla.http.policy import UpstreamPolicy, load_client_settings, render_schema, upstreams_schema
from tests.support import ROOT

SCHEMA_FILE = ROOT / "docs" / "upstream-policy.schema.json"

EXAMPLE = {
    "catalog": {
        "timeoutSeconds": 2,
        "retries": {"attempts": 3, "perTryTimeoutSeconds": 1, "retryOn": ["connect-failure", "503"]},
        "circuitBreaker": {"consecutiveFailures": 5, "failureRateThreshold": 0.5, "halfOpenMaxCalls": 2},
        "outlierDetection": {"consecutive5xxErrors": 7},
        "bulkhead": {"maxConcurrent": 20},
    }
}


def test_settings_read_camel_case_policies_and_the_mesh_flag(monkeypatch):
    monkeypatch.setenv("FLOTILLA_UPSTREAMS", json.dumps(EXAMPLE))
    monkeypatch.setenv("FLOTILLA_CLIENT_RETRIES", "false")
    settings = load_client_settings()
    catalog = settings.policy("catalog")
    assert catalog.timeout_seconds == 2
    assert catalog.retries.attempts == 3
    assert catalog.retries.per_try_timeout_seconds == 1
    assert catalog.retries.retry_on == ("connect-failure", "503")
    assert catalog.outlier_detection.consecutive_5xx_errors == 7
    assert settings.client_retries is False
    assert settings.policy("undeclared") == UpstreamPolicy()


def test_a_typo_in_a_policy_is_a_one_line_config_error(monkeypatch):
    monkeypatch.setenv("FLOTILLA_UPSTREAMS", json.dumps({"catalog": {"retries": {"attemps": 3}}}))
    with pytest.raises(ConfigError) as caught:
        load_client_settings()
    assert "FLOTILLA_UPSTREAMS" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_retry_on_accepts_only_the_conditions_the_client_implements():
    with pytest.raises(ValueError):
        UpstreamPolicy.model_validate({"retries": {"retryOn": ["500"]}})


def test_example_validates_against_the_exported_schema():
    jsonschema.validate(EXAMPLE, upstreams_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"catalog": {"bulkhead": {"maxConcurent": 1}}}, upstreams_schema())


def test_the_checked_in_schema_is_current():
    assert SCHEMA_FILE.read_text() == render_schema(), (
        "docs/upstream-policy.schema.json is stale; regenerate it with: python -c "
        "\"from flotilla.http.policy import render_schema; print(render_schema(), end='')\" "
        "> docs/upstream-policy.schema.json"
    )
