"""Fixtures for the resources tests: a moto endpoint and a fresh environment name per test.

A unique ``FLOTILLA_ENV`` per test gives every test its own physical names (``<env>-sample-...``)
on the shared moto server, so tests stay independent under pytest-xdist and in any order.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result

from flotilla.cli import main


@pytest.fixture
def env_name() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def aws_env(aws_endpoint: str, env_name: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The platform settings pointed at moto, with this test's own environment name."""
    monkeypatch.setenv("FLOTILLA_AWS_ENDPOINT_URL", aws_endpoint)
    monkeypatch.setenv("FLOTILLA_AWS_REGION", "us-east-1")
    monkeypatch.setenv("FLOTILLA_ENV", env_name)
    monkeypatch.delenv("FLOTILLA_SSM_ENABLED", raising=False)
    return env_name


@pytest.fixture
def aws(aws_endpoint: str) -> Callable[[str], Any]:
    """Plain boto3 clients on moto, for checking what the commands did."""
    return lambda name: boto3.client(name, endpoint_url=aws_endpoint, region_name="us-east-1")


@pytest.fixture
def flotilla() -> Callable[..., Result]:
    """Run the ``flotilla`` CLI in-process; stdout and stderr kept apart."""

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return run
