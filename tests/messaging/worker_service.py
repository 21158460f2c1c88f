"""A service for the process tests only: ``flotilla consume tests.messaging.worker_service:service``.

Its handler and relay record what they do in files (one line per step, appended atomically), so a
test can kill the process at any point and still read exactly what happened before.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import Field

from flotilla import Service, aws
from flotilla.backoff import Backoff
from flotilla.config import ServiceSettings, load_platform
from flotilla.messaging.consumer import Consumer
from flotilla.messaging.envelope import CloudEvent
from flotilla.messaging.outbox import OutboxRelay, outbox_table
from flotilla.messaging.publishers import SnsPublisher


class Settings(ServiceSettings, env_prefix="WORKERTEST_"):
    queue: str = ""
    journal: Path = Path("journal.log")
    handler_seconds: float = Field(0.0, ge=0)
    gate: Path | None = Field(None, description="handlers wait until this file exists (at most 60 s)")
    stall_after: int | None = Field(None, description="after this many handled, handlers hang (to be killed)")
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
    handled = itertools.count()

    def handle(event: CloudEvent) -> None:
        journal(settings.journal, f"start {event.id}")
        if settings.stall_after is not None and next(handled) >= settings.stall_after:
            time.sleep(600)  # mid-handler: the test SIGKILLs us here
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
            backoff=Backoff(base_seconds=1, max_seconds=1, full_jitter=False),
        )
    ]


class JournalledSnsPublisher:
    """The chassis SNS publisher, journalling each publish; hangs right after one so a test can kill it there."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sns = SnsPublisher(aws.client("sns", load_platform()), settings.topic_arn)

    def publish(self, event: CloudEvent) -> None:
        self.sns.publish(event)
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
    consumers=consumers,
    outbox=outbox,
)
