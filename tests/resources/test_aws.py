"""flotilla.aws: clients built from settings, botocore traced once per process."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

from flotilla import aws
from flotilla.config.settings import PlatformSettings


@pytest.fixture
def restore_instrumentation() -> Iterator[None]:
    was = BotocoreInstrumentor().is_instrumented_by_opentelemetry
    yield
    if not was and BotocoreInstrumentor().is_instrumented_by_opentelemetry:
        BotocoreInstrumentor().uninstrument()


def test_client_settings_and_single_instrumentation(
    restore_instrumentation: None, aws_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    platform = PlatformSettings(aws_region="eu-west-1", aws_endpoint_url=aws_endpoint)
    with caplog.at_level(logging.WARNING):
        first = aws.client("sqs", platform)
        aws.client("sns", platform)
        aws.instrument()
    assert BotocoreInstrumentor().is_instrumented_by_opentelemetry
    # A second instrument() would make OpenTelemetry warn; the wrapper exists to avoid that.
    assert not [r for r in caplog.records if "already instrumented" in r.getMessage()]
    config = first.meta.config
    assert (
        config.region_name,
        config.retries["mode"],
        config.connect_timeout,
        config.inject_host_prefix,
    ) == (
        "eu-west-1",
        "standard",
        2.0,
        False,
    )
    assert first.meta.endpoint_url == aws_endpoint
    assert aws.account_id(platform) == "123456789012"
