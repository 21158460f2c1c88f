from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from flotilla.config import PlatformSettings
from flotilla.logs import JsonFormatter
from services.sample.app import create_app
from services.sample.settings import Settings


class JsonLines(logging.Handler):
    """Collects what the chassis would print, formatted by the real JSON formatter."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter(service))
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def where(self, **match: Any) -> list[dict[str, Any]]:
        return [line for line in self.lines if all(line.get(k) == v for k, v in match.items())]


@pytest.fixture
def logs() -> Iterator[JsonLines]:
    handler = JsonLines("sample")
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


@pytest.fixture
def platform(tmp_path: Path) -> PlatformSettings:
    return PlatformSettings(trace_file=tmp_path / "traces.jsonl", max_body_bytes=1024)


@pytest.fixture
def app(platform: PlatformSettings, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr("flotilla.app.load_platform", lambda: platform)
    return create_app(Settings(api_token="s3cr3t-token-value"))


@pytest.fixture
def client(app: Any) -> FlaskClient:
    return app.test_client()
