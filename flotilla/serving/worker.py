"""What each gunicorn worker sets up for itself after the fork."""

from __future__ import annotations

from flotilla.config.settings import load_platform
from flotilla.logs import configure_logging
from flotilla.tracing import TracingConfig, init_tracing


def init_worker_telemetry(service: str) -> None:
    platform = load_platform()
    configure_logging(service, platform.log_level)
    init_tracing(TracingConfig.from_platform(service, platform))
