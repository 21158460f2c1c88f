"""Processed-message stores against a real Postgres and DynamoDB (moto): claims, leases, markers, and the
marker written in the effect's own transaction."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import boto3
import pytest
import sqlalchemy as sa

from flotilla.messaging.idempotency import (
    ClaimState,
    DynamoDBIdempotencyStore,
    IdempotencyStore,
)
from tests.messaging.conftest import dynamodb_table, postgres_store, unique


@pytest.fixture(params=["postgres", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Iterator[IdempotencyStore]:
    if request.param == "postgres":
        yield postgres_store(request.getfixturevalue("engine"))
    else:
        client = boto3.client(
            "dynamodb", endpoint_url=request.getfixturevalue("aws_endpoint"), region_name="us-east-1"
        )
        yield DynamoDBIdempotencyStore(client, dynamodb_table(client))


def test_claim_complete_then_duplicate(store: IdempotencyStore) -> None:
    assert store.claim("orders|e-1", 30).state is ClaimState.NEW
    busy = store.claim("orders|e-1", 30)
    assert busy.state is ClaimState.BUSY
    assert 0 < busy.retry_after <= 31
    store.complete("orders|e-1")
    assert store.claim("orders|e-1", 30).state is ClaimState.DONE
    assert store.claim("orders|e-2", 30).state is ClaimState.NEW


def test_released_claim_can_be_taken_again(store: IdempotencyStore) -> None:
    assert store.claim("k", 30).state is ClaimState.NEW
    store.release("k")
    assert store.claim("k", 30).state is ClaimState.NEW


def test_expired_lease_is_taken_over(store: IdempotencyStore) -> None:
    # A consumer that died mid-handler leaves a lease; once it ends, the redelivery may run.
    assert store.claim("k", -5).state is ClaimState.NEW
    assert store.claim("k", 30).state is ClaimState.NEW
    assert store.claim("k", 30).state is ClaimState.BUSY


def test_expired_marker_no_longer_blocks(store: IdempotencyStore) -> None:
    store.ttl_seconds = -5
    assert store.claim("k", 30).state is ClaimState.NEW
    store.complete("k")
    assert store.claim("k", 30).state is ClaimState.NEW


def test_release_leaves_a_completed_marker_alone(store: IdempotencyStore) -> None:
    store.claim("k", 30)
    store.complete("k")
    store.release("k")
    assert store.claim("k", 30).state is ClaimState.DONE


def test_postgres_cleanup_deletes_only_expired(engine: sa.Engine) -> None:
    store = postgres_store(engine)
    store.claim("live", 30)
    store.claim("stale", -5)
    assert store.cleanup() == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(store.table.c.key)).scalars().all() == ["live"]


def test_postgres_marker_in_the_effects_transaction_gives_one_effect(engine: sa.Engine) -> None:
    """Redeliveries racing each other: the unique key lets exactly one transaction's effect commit."""
    store = postgres_store(engine)
    effects = sa.Table(unique("effects").replace("-", "_"), sa.MetaData(), sa.Column("event_id", sa.Text))
    effects.create(engine)
    start = threading.Barrier(8)
    outcomes: list[bool] = []

    def deliver() -> None:
        start.wait()
        with engine.begin() as conn:
            first = store.record(conn, "orders|e-1")
            if first:
                conn.execute(effects.insert().values(event_id="e-1"))
            outcomes.append(first)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(effects)).scalar_one() == 1
    assert sorted(outcomes) == [False] * 7 + [True]


def test_postgres_marker_rolls_back_with_a_failed_effect(engine: sa.Engine) -> None:
    store = postgres_store(engine)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        assert store.record(conn, "k")
        raise RuntimeError("effect failed")
    with engine.begin() as conn:
        assert store.record(conn, "k"), "the retry must run: the failed attempt left no marker"
    with engine.begin() as conn:
        assert not store.record(conn, "k")


def test_dynamodb_marker_in_the_effects_transaction(aws_endpoint: str) -> None:
    client = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="us-east-1")
    store = DynamoDBIdempotencyStore(client, dynamodb_table(client))
    effects = dynamodb_table(client)

    def deliver() -> bool:
        try:
            client.transact_write_items(
                TransactItems=[
                    store.transact_item("orders|e-1"),
                    {
                        "Update": {
                            "TableName": effects,
                            "Key": {"id": {"S": "order-1"}},
                            "UpdateExpression": "ADD shipped :one",
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    },
                ]
            )
        except client.exceptions.TransactionCanceledException as err:
            reasons = [r.get("Code") for r in err.response.get("CancellationReasons", [])]
            assert reasons[0] == "ConditionalCheckFailed"
            return False
        return True

    assert deliver()
    assert not deliver()
    item = client.get_item(TableName=effects, Key={"id": {"S": "order-1"}})["Item"]
    assert item["shipped"]["N"] == "1"
