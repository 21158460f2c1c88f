"""Config: environment, SSM overlay against a real moto server, one-line errors, masking."""

from __future__ import annotations

import json
import subprocess

import boto3
import pytest
from pydantic import Field, SecretStr

from flotilla.config import (
    ConfigError,
    ParameterStore,
    PlatformSettings,
    ServiceSettings,
    effective_config,
    load_platform,
    load_settings,
)
from flotilla.service import installed_services
from tests.support import FLOTILLA, ROOT


class OrdersSettings(ServiceSettings, env_prefix="ORDERS_"):
    database_url: SecretStr
    page_size: int = Field(20, ge=1, le=100)
    region_label: str = "eu"


def test_settings_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_DATABASE_URL", "postgresql://u:pw@db/orders")
    monkeypatch.setenv("ORDERS_PAGE_SIZE", "50")
    settings = load_settings(OrdersSettings, service="orders", platform=PlatformSettings())
    assert settings.page_size == 50
    assert settings.database_url.get_secret_value() == "postgresql://u:pw@db/orders"


def test_missing_setting_names_the_variable_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERS_DATABASE_URL", raising=False)
    monkeypatch.setenv("ORDERS_PAGE_SIZE", "500")
    with pytest.raises(ConfigError) as caught:
        load_settings(OrdersSettings, service="orders", platform=PlatformSettings())
    message = str(caught.value)
    assert "\n" not in message
    assert "ORDERS_DATABASE_URL: is required but not set" in message
    assert "ORDERS_PAGE_SIZE: input should be less than or equal to 100 (got '500')" in message


def test_invalid_secret_is_reported_without_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    class Strict(ServiceSettings, env_prefix="STRICT_"):
        api_token: SecretStr = Field(min_length=40)

    monkeypatch.setenv("STRICT_API_TOKEN", "hunter2-short")
    with pytest.raises(ConfigError) as caught:
        load_settings(Strict, service="strict", platform=PlatformSettings())
    assert "STRICT_API_TOKEN" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_platform_rejects_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOTILLA_TRACE_SAMPLE_RATIO", "1.5")
    with pytest.raises(
        ConfigError, match="FLOTILLA_TRACE_SAMPLE_RATIO: input should be less than or equal to 1"
    ):
        load_platform()


def test_effective_config_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_DATABASE_URL", "postgresql://u:pw@db/orders")
    shown = effective_config(load_settings(OrdersSettings, service="orders", platform=PlatformSettings()))
    assert shown == {"database_url": "********", "page_size": 20, "region_label": "eu"}


@pytest.fixture
def ssm(aws_endpoint: str) -> object:
    return boto3.client("ssm", endpoint_url=aws_endpoint, region_name="us-east-1")


def test_ssm_overlays_environment_and_decrypts(
    ssm: object, aws_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ssm.put_parameter(Name="/flotilla/qa/orders/database_url", Value="postgresql://ssm", Type="SecureString")  # type: ignore[attr-defined]
    ssm.put_parameter(Name="/flotilla/qa/orders/page-size", Value="7", Type="String", Overwrite=True)  # type: ignore[attr-defined]
    monkeypatch.setenv("ORDERS_PAGE_SIZE", "50")
    platform = PlatformSettings(env="qa", ssm_enabled=True, aws_endpoint_url=aws_endpoint)
    settings = load_settings(OrdersSettings, service="orders", platform=platform)
    assert settings.database_url.get_secret_value() == "postgresql://ssm"
    assert settings.page_size == 7  # SSM wins over the environment


def test_bad_ssm_value_names_the_parameter(ssm: object, aws_endpoint: str) -> None:
    ssm.put_parameter(Name="/flotilla/bad/orders/database_url", Value="x", Type="SecureString")  # type: ignore[attr-defined]
    ssm.put_parameter(Name="/flotilla/bad/orders/page_size", Value="lots", Type="String")  # type: ignore[attr-defined]
    platform = PlatformSettings(env="bad", ssm_enabled=True, aws_endpoint_url=aws_endpoint)
    with pytest.raises(ConfigError, match="/flotilla/bad/orders/page_size: input should be a valid integer"):
        load_settings(OrdersSettings, service="orders", platform=platform)


class CountingClient:
    """A real boto3 SSM client that counts the calls it forwards."""

    def __init__(self, client: object) -> None:
        self.client = client
        self.calls = 0

    def get_parameter(self, **kwargs: object) -> object:
        self.calls += 1
        return self.client.get_parameter(**kwargs)  # type: ignore[attr-defined]


def test_parameter_store_caches_until_ttl_passes(ssm: object) -> None:
    ssm.put_parameter(Name="/flotilla/ttl/svc/key", Value="v1", Type="SecureString")  # type: ignore[attr-defined]
    now = [1000.0]
    counting = CountingClient(ssm)
    store = ParameterStore(counting, ttl=60, clock=lambda: now[0])
    assert store.get("/flotilla/ttl/svc/key") == "v1"
    ssm.put_parameter(Name="/flotilla/ttl/svc/key", Value="v2", Type="SecureString", Overwrite=True)  # type: ignore[attr-defined]
    now[0] += 59
    assert store.get("/flotilla/ttl/svc/key") == "v1"
    assert counting.calls == 1
    now[0] += 2
    assert store.get("/flotilla/ttl/svc/key") == "v2"
    assert counting.calls == 2


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [*FLOTILLA, *args],
        capture_output=True,
        check=False,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_cli_config_prints_effective_config_with_secrets_masked() -> None:
    result = run_cli("config", "sample", env={"SAMPLE_API_TOKEN": "tok-very-secret", "SAMPLE_GREETING": "Hi"})
    assert result.returncode == 0, result.stderr
    assert "tok-very-secret" not in result.stdout
    assert '"api_token": "********"' in result.stdout
    assert '"greeting": "Hi"' in result.stdout


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SAMPLE_GREETING": ""}, "SAMPLE_GREETING: string should have at least 1 character"),
        ({"FLOTILLA_LOG_LEVEL": "LOUD"}, "FLOTILLA_LOG_LEVEL: string should match pattern"),
    ],
)
def test_serve_with_bad_config_exits_2_with_one_line(env: dict[str, str], expected: str) -> None:
    result = run_cli("serve", "sample", "--bind", "127.0.0.1:1", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_unknown_service_is_one_line() -> None:
    result = run_cli("config", "nosuch")
    assert result.returncode == 2
    # Services are found by entry point: the error names those installed, never a package to look in.
    installed = ", ".join(sorted(installed_services()))
    assert installed.startswith("cart, catalog, gateway")
    assert result.stderr.strip() == (
        f"flotilla: no service named 'nosuch' (installed: {installed}; or give a module path, pkg.module:service)"
    )
    result = run_cli("config", "no.such.module:service")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "flotilla: no service named 'no.such.module:service' (no module no.such.module)"
    )


def test_a_service_can_be_named_by_module_path() -> None:
    by_name = run_cli("config", "sample")
    by_path = run_cli("config", "services.sample:service")
    assert by_name.returncode == by_path.returncode == 0, by_path.stderr
    assert json.loads(by_path.stdout) == json.loads(by_name.stdout)


def test_gateway_without_principal_secret_outside_local_exits_2_before_forking() -> None:
    result = run_cli("serve", "gateway", "--bind", "127.0.0.1:1", env={"FLOTILLA_ENV": "prod"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "flotilla: gateway: invalid configuration: FLOTILLA_PRINCIPAL_SECRET: is required by the gateway "
        "(services verify callers with it)"
    ]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FLOTILLA_UPSTREAMS": "{not json"}, "FLOTILLA_UPSTREAMS: is not valid JSON"),
        (
            {"FLOTILLA_UPSTREAMS": '{"catalog": {"timeoutSecond": 2}}'},
            "FLOTILLA_UPSTREAMS.catalog.timeoutSecond: extra inputs are not permitted",
        ),
        ({"FLOTILLA_DISCOVERY_STATIC": "{bad"}, "FLOTILLA_DISCOVERY_STATIC: is not valid JSON"),
    ],
)
def test_chassis_json_settings_are_checked_before_serving(env: dict[str, str], expected: str) -> None:
    result = run_cli("serve", "sample", "--bind", "127.0.0.1:1", env=env)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("flotilla: sample: invalid configuration: ")
    assert expected in line


@pytest.mark.parametrize("service", ["gateway", "sample"])
@pytest.mark.parametrize("secret", ["", "   "])
def test_an_empty_principal_secret_stops_start_up(service: str, secret: str) -> None:
    # Headers signed with an empty key can be forged by anyone: refuse the key, don't trust it.
    result = run_cli("serve", service, "--bind", "127.0.0.1:1", env={"FLOTILLA_PRINCIPAL_SECRET": secret})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"flotilla: {service}: invalid configuration: FLOTILLA_PRINCIPAL_SECRET: must not be empty"
        " (unset it to run without signed identities)"
    )


@pytest.mark.parametrize("service", ["gateway", "sample"])
def test_a_short_principal_secret_stops_start_up_outside_local(service: str) -> None:
    # One captured request is enough to guess a short key offline, and then to sign anything.
    env = {"FLOTILLA_ENV": "prod", "FLOTILLA_PRINCIPAL_SECRET": "x" * 31}
    result = run_cli("serve", service, "--bind", "127.0.0.1:1", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"flotilla: {service}: invalid configuration: FLOTILLA_PRINCIPAL_SECRET: must be at least 32 "
        "characters outside FLOTILLA_ENV=local (FLOTILLA_ENV is 'prod')"
    )


def test_a_short_principal_secret_is_allowed_in_local_and_32_characters_anywhere() -> None:
    local = run_cli("config", "sample", env={"FLOTILLA_ENV": "local", "FLOTILLA_PRINCIPAL_SECRET": "dev"})
    assert local.returncode == 0, local.stderr
    assert PlatformSettings(env="prod", principal_secret="x" * 32).principal_secret is not None
    with pytest.raises(ValueError, match="at least 32 characters"):
        PlatformSettings(env="staging", principal_secret="x" * 31)


def test_an_empty_key_neither_signs_nor_verifies() -> None:
    from flotilla.principal import Principal, sign, verify

    target = {"audience": "sample", "method": "GET", "path": "/"}
    with pytest.raises(ValueError, match="empty"):
        sign(Principal("mallory", frozenset({"admin"}), "x"), "", **target)
    forged = sign(Principal("mallory", frozenset({"admin"}), "x"), "k", **target)
    with pytest.raises(ValueError, match="empty"):
        verify(forged, "", **target)
