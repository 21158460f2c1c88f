"""Each piece of the chassis works alone: imported in a fresh interpreter, it loads only what it needs.

The table is the one in docs/architecture.md. A row names what a piece must NOT load; a piece that starts
importing one of those (a web framework for a token bucket, an HTTP client for a database) fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

WEB = ("flask", "werkzeug")
HTTP_CLIENT = ("httpx",)
OTEL_SDK = ("opentelemetry.sdk",)
OTEL = ("opentelemetry",)
AWS = ("boto3", "botocore")
SQL = ("sqlalchemy", "alembic", "psycopg")
METRICS = ("prometheus_client",)
REDIS = ("redis",)
JWT = ("jwt",)
CLI = ("click", "gunicorn")
SETTINGS = ("pydantic",)
EVERYTHING = (*WEB, *HTTP_CLIENT, *OTEL, *AWS, *SQL, *METRICS, *REDIS, *JWT, *CLI, *SETTINGS, "yaml")

# piece -> what importing it must not load
MUST_NOT_LOAD: dict[str, tuple[str, ...]] = {
    "flotilla": EVERYTHING,
    "flotilla.clock": EVERYTHING,
    "flotilla.context": EVERYTHING,
    "flotilla.backoff": EVERYTHING,
    "flotilla.outage": EVERYTHING,
    "flotilla.messaging": EVERYTHING,
    "flotilla.serving": EVERYTHING,
    "flotilla.config": (*WEB, *HTTP_CLIENT, *OTEL, *AWS, *SQL, *METRICS, *REDIS, *JWT),
    "flotilla.ratelimit": (*WEB, *HTTP_CLIENT, *OTEL, *AWS, *SQL, *METRICS, *REDIS, *SETTINGS),
    "flotilla.auth": (*WEB, *HTTP_CLIENT, *OTEL, *AWS, *SQL, *METRICS, *REDIS, *SETTINGS),
    "flotilla.aws": (*WEB, *HTTP_CLIENT, *OTEL_SDK, *SQL, *METRICS, *REDIS, *SETTINGS),
    "flotilla.db": (*WEB, *HTTP_CLIENT, *OTEL, *AWS, *METRICS, *REDIS),
    "flotilla.cache": (*WEB, *HTTP_CLIENT, *OTEL, *AWS, *SQL, *METRICS),
    "flotilla.logs": (*WEB, *HTTP_CLIENT, *OTEL_SDK, *AWS, *SQL, *METRICS, *REDIS, *SETTINGS),
    "flotilla.health": (*HTTP_CLIENT, *OTEL, *AWS, *SQL, *METRICS, *REDIS, *SETTINGS),
    "flotilla.bodylimit": (*HTTP_CLIENT, *OTEL_SDK, *AWS, *SQL, *METRICS, *REDIS),
    "flotilla.metrics": (*HTTP_CLIENT, *OTEL, *AWS, *SQL, *REDIS, *SETTINGS),
    "flotilla.tracing": (*HTTP_CLIENT, *AWS, *SQL, *METRICS, *REDIS),
    "flotilla.discovery": (*WEB, *HTTP_CLIENT, *OTEL, *SQL, *METRICS, *REDIS),
    "flotilla.http": (*SQL, "boto3", *REDIS, *JWT),
    "flotilla.service": (*WEB, *HTTP_CLIENT, *OTEL, *AWS, *SQL, *METRICS, *REDIS),
    "flotilla.cli": (*WEB, *HTTP_CLIENT, *OTEL, *AWS, *SQL, *METRICS, *REDIS, *SETTINGS),
}

PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(sys.modules)))
"""


def loaded_by(piece: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, piece], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out))


@pytest.mark.parametrize("piece", sorted(MUST_NOT_LOAD))
def test_a_piece_imported_alone_loads_only_what_it_needs(piece: str) -> None:
    loaded = loaded_by(piece)
    assert piece in loaded
    dragged = sorted(
        name for name in MUST_NOT_LOAD[piece] if any(m == name or m.startswith(name + ".") for m in loaded)
    )
    assert dragged == [], f"importing {piece} loads {dragged}"


def test_the_composer_does_load_the_pieces() -> None:
    """The probe can see a heavy import: the composer, which wires everything, shows them all."""
    loaded = loaded_by("flotilla.app")
    assert {"flask", "httpx", "opentelemetry.sdk", "prometheus_client"} <= loaded
