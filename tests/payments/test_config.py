"""Bad payments settings stop start-up with one line naming the variable (exit 2), before gunicorn."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from flotilla.cli import main
from flotilla.config import ConfigError
from flotilla.config.settings import load_platform
from services.payments.fingerprint import fingerprint_key
from services.payments.settings import Settings

GOOD_SECRET = "payments-tests-fingerprint-secret-of-40-chars"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("FLOTILLA_PRINCIPAL_SECRET", "FLOTILLA_SSM_ENABLED", "FLOTILLA_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PAYMENTS_DATABASE_URL", "postgresql://payments@127.0.0.1:5432/payments")
    monkeypatch.setenv("FLOTILLA_PRINCIPAL_SECRET", "a-principal-secret-long-enough-for-any-env")
    return monkeypatch


def config(env: pytest.MonkeyPatch, **values: str | None) -> tuple[int, str]:
    for name, value in values.items():
        if value is None:
            env.delenv(name, raising=False)
        else:
            env.setenv(name, value)
    result = CliRunner().invoke(main, ["config", "payments"])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"PAYMENTS_FAULT_ERROR_RATE": "1.5"}, "PAYMENTS_FAULT_ERROR_RATE"),
        ({"PAYMENTS_FAULT_LATENCY_MS": "-1"}, "PAYMENTS_FAULT_LATENCY_MS"),
        (
            {"PAYMENTS_IDEMPOTENCY_LEASE_SECONDS": "10"},
            "PAYMENTS_IDEMPOTENCY_LEASE_SECONDS",
        ),  # slow card: 10 s
        (
            {
                "PAYMENTS_FAULT_LATENCY_MS": "5000",
                "PAYMENTS_SLOW_CARD_SECONDS": "1",
                "PAYMENTS_IDEMPOTENCY_LEASE_SECONDS": "6",
            },
            "PAYMENTS_IDEMPOTENCY_LEASE_SECONDS",
        ),
        ({"FLOTILLA_ENV": "prod", "PAYMENTS_FINGERPRINT_SECRET": "short"}, "PAYMENTS_FINGERPRINT_SECRET"),
        ({"PAYMENTS_FINGERPRINT_SECRET": " "}, "PAYMENTS_FINGERPRINT_SECRET"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(
    env: pytest.MonkeyPatch, values: dict[str, str | None], named: str
) -> None:
    code, output = config(env, **values)
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], output
    assert "short" not in lines[0]  # a secret's value is never quoted


def test_good_settings_pass_and_the_secret_is_masked(env: pytest.MonkeyPatch) -> None:
    code, output = config(env, PAYMENTS_FINGERPRINT_SECRET=GOOD_SECRET, PAYMENTS_FAULT_ERROR_RATE="0.2")
    assert code == 0, output
    assert GOOD_SECRET not in output
    assert '"fault_error_rate": 0.2' in output


def test_no_secret_at_all_passes_the_cli_but_not_the_app(env: pytest.MonkeyPatch) -> None:
    """The chart's migration Job may run before the shared principal Secret exists: it must not need a
    fingerprint key. The app does (it could not check a caller without the principal secret either)."""
    code, output = config(env, FLOTILLA_PRINCIPAL_SECRET=None)
    assert code == 0, output
    with pytest.raises(ConfigError, match="PAYMENTS_FINGERPRINT_SECRET"):
        fingerprint_key(Settings(), load_platform())  # type: ignore[call-arg]


def test_the_fingerprint_key_is_derived_never_the_secret_itself(env: pytest.MonkeyPatch) -> None:
    derived = fingerprint_key(Settings(), load_platform())  # type: ignore[call-arg]
    env.setenv("PAYMENTS_FINGERPRINT_SECRET", GOOD_SECRET)
    own = fingerprint_key(Settings(), load_platform())  # type: ignore[call-arg]
    assert len({derived, own}) == 2
    assert GOOD_SECRET.encode() not in own and b"a-principal-secret" not in derived
