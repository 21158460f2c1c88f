"""Fixtures for the consumer, idempotency and outbox tests: queues with dead-letter queues, a SQLAlchemy
engine on the throwaway Postgres, and a helper to wait for an outcome without timing assertions."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
import pytest
import sqlalchemy as sa

from flotilla.messaging.idempotency import PostgresIdempotencyStore, processed_table

T = TypeVar("T")


def eventually(probe: Callable[[], T], timeout: float = 30.0, interval: float = 0.1, what: str = "") -> T:
    """Poll ``probe`` until it returns something truthy; fail (not flake) with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout}s waiting for {what or probe}")
        time.sleep(interval)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Queue:
    name: str
    url: str
    dlq_url: str
    max_receive_count: int


@pytest.fixture(scope="session")
def sqs(aws_endpoint: str) -> Any:
    return boto3.client("sqs", endpoint_url=aws_endpoint, region_name="us-east-1")


@pytest.fixture
def make_queue(sqs: Any) -> Callable[..., Queue]:
    """A queue with its own dead-letter queue and redrive policy, as ``flotilla provision`` makes them."""

    def make(visibility: int = 2, max_receive_count: int = 3) -> Queue:
        name = unique("q")
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        url = sqs.create_queue(
            QueueName=name,
            Attributes={
                "VisibilityTimeout": str(visibility),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
                ),
            },
        )["QueueUrl"]
        return Queue(name, url, dlq_url, max_receive_count)

    return make


def queue_depth(sqs: Any, url: str) -> int:
    """Visible plus in-flight messages: zero once everything was deleted."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture(scope="session")
def database_url(postgres_url: str) -> str:
    """The throwaway Postgres as a SQLAlchemy URL for psycopg 3."""
    return postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(database_url, pool_size=10, max_overflow=10)
    yield engine
    engine.dispose()


def dynamodb_table(client: Any) -> str:
    name = unique("processed")
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )
    return name


def postgres_store(engine: sa.Engine, **kwargs: Any) -> PostgresIdempotencyStore:
    store = PostgresIdempotencyStore(
        engine, table=processed_table(sa.MetaData(), unique("processed").replace("-", "_")), **kwargs
    )
    store.create_table()
    return store
