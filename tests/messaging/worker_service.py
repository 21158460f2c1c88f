"""A service for the process tests only: ``flotilla consume tests.messaging.worker_service:service``.

Its handler and relay record what they do in files (one line per step, appended atomically), so a
test can kill the process at any point and still read exactly what happened before.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import boto3
import sqlalchemy as sa
from pydantic import Field

from flotilla import Service
from flotilla.config import ServiceSettings
from flotilla.messaging.consumer import Consumer
from flotilla.messaging.envelope import CloudEvent, to_json
from flotilla.messaging.outbox import OutboxRelay, outbox_table
from flotilla.messaging.retry import Backoff


class Settings(ServiceSettings, env_prefix="WORKERTEST_"):
    queue: str = ""
    journal: Path = Path("journal.log")
    handler_seconds: float = Field(0.0, ge=0)
    gate: Path | None = Field(None, description="handlers wait until this file exists (at most 60 s)")
    concurrency: int = 4
    database_url: str = ""
    outbox_table: str = "flotilla_outbox"
    topic_arn: str = ""
    hang_after_publishing: str = Field("", description="event id after whose publish the relay hangs")


def journal(path: Path, line: str) -> None:
    """Append one line with a single write: lines from threads and processes never interleave."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def consumers(settings: Settings) -> Iterable[Consumer]:
    def handle(event: CloudEvent) -> None:
        journal(settings.journal, f"start {event.id}")
        time.sleep(settings.handler_seconds)
        deadline = time.monotonic() + 60
        while settings.gate is not None and not settings.gate.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        journal(settings.journal, f"done {event.id}")

    return [
        Consumer(
            queue=settings.queue,
            handler=handle,
            concurrency=settings.concurrency,
            wait_seconds=1,
            backoff=Backoff(base_seconds=1, max_seconds=1),
        )
    ]


class JournalledSnsPublisher:
    """Publishes to SNS, then journals it; can hang right after one publish so a test kills it there."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sns: Any = boto3.client(
            "sns", endpoint_url=os.environ["FLOTILLA_AWS_ENDPOINT_URL"], region_name="us-east-1"
        )

    def publish(self, event: CloudEvent) -> None:
        self.sns.publish(TopicArn=self.settings.topic_arn, Message=to_json(event))
        journal(self.settings.journal, f"published {event.id}")
        if event.id == self.settings.hang_after_publishing:
            time.sleep(600)  # published but not yet marked sent: the test SIGKILLs us here


def outbox(settings: Settings) -> OutboxRelay:
    engine = sa.create_engine(settings.database_url)
    return OutboxRelay(
        engine,
        {"events": JournalledSnsPublisher(settings)},
        table=outbox_table(sa.MetaData(), settings.outbox_table),
        poll_interval=0.2,
    )


def _create_app(settings: Settings) -> Any:
    from flotilla import create_app

    return create_app("workertest", settings)


service = Service(
    name="workertest",
    settings=Settings,
    create_app=_create_app,
    extras={"consumers": consumers, "outbox": outbox},
)
