"""boto3 clients built from platform settings: region, endpoint override, retries and timeouts."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from flotilla.config.settings import PlatformSettings


def client(
    service_name: str, platform: PlatformSettings, *, connect_timeout: float = 2.0, read_timeout: float = 10.0
) -> Any:
    """A boto3 client with the ``standard`` retry mode and bounded timeouts.

    With an endpoint override (the local emulator) the host prefix some APIs add (Cloud Map's
    ``data-``) is turned off, or the emulator would be unreachable.
    """
    config = Config(
        region_name=platform.aws_region,
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        inject_host_prefix=platform.aws_endpoint_url is None,
    )
    return boto3.session.Session().client(
        service_name, endpoint_url=platform.aws_endpoint_url, config=config
    )
