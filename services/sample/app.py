"""HTTP API of the sample service."""

from __future__ import annotations

import time

from flask_openapi3.openapi import OpenAPI
from pydantic import Field

from flotilla import create_app as create_chassis_app
from flotilla.api import Body, Model
from flotilla.config import load_settings
from flotilla.errors import ProblemError
from services.sample.settings import Settings


class NamePath(Model):
    name: str = Field(min_length=1, max_length=64)


class GreetQuery(Model):
    shout: bool = False


class Greeting(Model):
    message: str


class SlowQuery(Model):
    seconds: float = Field(1.0, ge=0)


class EchoBody(Body):
    text: str = Field(min_length=1, max_length=1000)
    repeat: int = Field(1, ge=1, le=10)


class Echo(Model):
    text: str


def create_app(settings: Settings | None = None) -> OpenAPI:
    settings = settings or load_settings(Settings, service="sample")
    app = create_chassis_app("sample", settings, title="Sample service")

    @app.get("/hello/<name>", responses={200: Greeting})
    def hello(path: NamePath, query: GreetQuery) -> dict[str, str]:
        """Greet someone by name."""
        message = f"{settings.greeting}, {path.name}!"
        return Greeting(message=message.upper() if query.shout else message).model_dump()

    @app.post("/echo", responses={200: Echo})
    def echo(body: EchoBody) -> dict[str, str]:
        """Repeat the text back; shows body validation and 415 for non-JSON."""
        return Echo(text=" ".join([body.text] * body.repeat)).model_dump()

    @app.get("/slow", responses={200: Greeting})
    def slow(query: SlowQuery) -> dict[str, str]:
        """Answer after a delay: lets tests and operators watch a graceful drain."""
        if query.seconds > settings.max_slow_seconds:
            raise ProblemError(400, "Too slow", f"seconds must be at most {settings.max_slow_seconds}")
        time.sleep(query.seconds)
        return Greeting(message=f"done after {query.seconds}s").model_dump()

    @app.get("/ping")
    def ping() -> dict[str, bool]:
        """The cheapest JSON route: what the benchmarks drive."""
        return {"ok": True}

    return app
