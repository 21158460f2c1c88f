"""Traced boto3 clients built from platform settings: region, endpoint override, retries and timeouts.

Below ``flotilla.config`` in the layers (config reads SSM through it), so it asks only for the two
fields it uses, not for the settings class.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import boto3
from botocore.config import Config


class AwsTarget(Protocol):
    """Where AWS calls go: ``flotilla.config.PlatformSettings`` is one."""

    @property
    def aws_region(self) -> str: ...

    @property
    def aws_endpoint_url(self) -> str | None: ...


_instrument_lock = threading.Lock()
_account_ids: dict[tuple[str, str | None], str] = {}


def instrument() -> None:
    """Trace every botocore call in this process (once; later calls do nothing).

    The OpenTelemetry botocore instrumentation patches botocore itself, so it is per process, not
    per client. It also injects trace context into SQS/SNS message attributes, but only while a
    message has at most 10 attributes counting the propagator's own fields; the CloudEvents
    envelope (``flotilla.messaging.envelope``) carries the trace regardless.
    """
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

    with _instrument_lock:
        instrumentor: Any = BotocoreInstrumentor()  # type: ignore[no-untyped-call]
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


def client(
    service_name: str,
    platform: AwsTarget,
    *,
    connect_timeout: float = 2.0,
    read_timeout: float = 10.0,
    traced: bool = True,
) -> Any:
    """A boto3 client with the ``standard`` retry mode, bounded timeouts and tracing on.

    With an endpoint override (the local emulator) the host prefix some APIs add (Cloud Map's
    ``data-``) is turned off, or the emulator would be unreachable. Each call makes its own
    session: boto3's default session is not thread-safe to build clients from.
    """
    if traced:
        instrument()
    config = Config(
        region_name=platform.aws_region,
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        inject_host_prefix=platform.aws_endpoint_url is None,
    )
    session: Any = boto3.session.Session()
    return session.client(service_name, endpoint_url=platform.aws_endpoint_url, config=config)


def account_id(platform: AwsTarget) -> str:
    """The account the current credentials belong to (STS ``GetCallerIdentity``, cached per endpoint).

    ARNs need it; ``GetCallerIdentity`` needs no IAM permission, so any service can ask.
    """
    key = (platform.aws_region, platform.aws_endpoint_url)
    if key not in _account_ids:
        identity = client("sts", platform, traced=False).get_caller_identity()
        _account_ids[key] = str(identity["Account"])
    return _account_ids[key]
