"""``create_app``: the chassis pieces composed into one Flask app, in the order they must hook in."""

from __future__ import annotations

from typing import Any

from pydantic_settings import BaseSettings

from flotilla.api import ChassisAPI, create_api
from flotilla.bodylimit import BodyLimit
from flotilla.config.settings import PlatformSettings, load_platform, secret_values
from flotilla.errors import Problems
from flotilla.health import Health
from flotilla.http.deadline import Deadlines
from flotilla.logs import configure_logging, redactor
from flotilla.metrics import Metrics
from flotilla.requestlog import RequestLog
from flotilla.tracing import Tracing, TracingConfig


def create_app(
    service: str,
    settings: BaseSettings | None = None,
    *,
    platform: PlatformSettings | None = None,
    title: str | None = None,
    **flask_config: Any,
) -> ChassisAPI:
    """A Flask app with health, metrics, tracing, JSON logs, problem+json errors and OpenAPI.

    Each telemetry piece wraps the WSGI app, so the last one applied runs outermost: tracing goes
    last, so its span is current while the access line and the metrics are written.
    """
    platform = platform or load_platform()
    configure_logging(service, platform.log_level)
    redactor.add(*secret_values(platform))
    if settings is not None:
        redactor.add(*secret_values(settings))
    app = create_api(service, title=title, version=platform.service_version)
    app.config.update(flask_config)
    app.extensions["flotilla.platform"] = platform
    app.extensions["flotilla.settings"] = settings
    Health(app)
    Problems(app)
    BodyLimit(app, max_bytes=platform.max_body_bytes)
    Deadlines(app)
    Metrics(app, service=service, version=platform.service_version)
    RequestLog(app, enabled=platform.access_log)
    Tracing(app, config=TracingConfig.from_platform(service, platform))
    return app
