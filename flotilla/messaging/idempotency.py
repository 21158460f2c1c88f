"""Processed-message stores, so an event delivered twice (SQS is at-least-once) has one effect.

SQS redelivers a message whenever a consumer dies before deleting it, a delete fails, or the outbox
relay re-publishes after a crash. The consumer therefore records each event it has handled, keyed
by the CloudEvents ``source`` + ``id`` (unique per event by the spec), and skips events it finds
recorded. Two ways to use a store:

- **Claim, run, complete** (any backend, what the consumer runner does with ``Consumer(idempotency=)``):
  :meth:`IdempotencyStore.claim` takes a short lease on the key, the handler runs, :meth:`complete`
  turns the lease into a marker that lives ``ttl_seconds``; a failed handler :meth:`release`\\ s it.
  A crash between the effect and ``complete`` can still repeat the effect once the lease expires:
  this path makes duplicates rare, not impossible.
- **In the effect's own transaction** (exactly one effect): :meth:`PostgresIdempotencyStore.record`
  inserts the marker with the caller's connection, so the marker and the effect commit or roll back
  together; :meth:`DynamoDBIdempotencyStore.transact_item` is the same for a handler that writes its
  effect with DynamoDB ``TransactWriteItems``.

One expiry column serves both states: an in-progress row expires when its lease ends (so a crashed
consumer's claim can be taken over), a completed row when its marker is no longer needed. Keep
``ttl_seconds`` above the longest time a duplicate can arrive: the queue's retention period, plus
any time a message may sit in the dead-letter queue before being redriven.
"""

from __future__ import annotations

import contextlib
import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from flotilla.messaging.envelope import CloudEvent

DEFAULT_TTL_SECONDS = 4 * 24 * 3600.0  # SQS's default retention: a duplicate can't arrive later than that.

IN_PROGRESS = "in_progress"
COMPLETED = "completed"


def event_key(event: CloudEvent) -> str:
    """The idempotency key of an event: CloudEvents makes ``source`` + ``id`` unique, ``id`` alone is not."""
    return f"{event.source}|{event.id}"


class ClaimState(enum.Enum):
    NEW = "new"  # this caller holds the lease: run the handler, then complete or release
    DONE = "done"  # already processed: acknowledge without running
    BUSY = "busy"  # another consumer holds a live lease: try again after ``retry_after``


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    retry_after: float = 0.0  # seconds until a BUSY lease expires


class IdempotencyStore(ABC):
    """What the consumer runner needs from a processed-message store."""

    ttl_seconds: float

    @abstractmethod
    def claim(self, key: str, lease_seconds: float) -> Claim:
        """Take a lease on ``key`` unless it is processed or leased by someone else."""

    @abstractmethod
    def extend(self, key: str, lease_seconds: float) -> None:
        """Push a held lease's end out, for handlers that outlive it (the runner's heartbeat calls this)."""

    @abstractmethod
    def complete(self, key: str) -> None:
        """Turn the lease into a processed marker that lives ``ttl_seconds``."""

    @abstractmethod
    def release(self, key: str) -> None:
        """Drop a lease after a failed handler, so the retry can claim it at once."""

    def cleanup(self) -> int:
        """Delete expired rows where the backend doesn't do it itself; returns how many."""
        return 0


# --- Postgres ---------------------------------------------------------------------------------------


def processed_table(metadata: sa.MetaData, name: str = "flotilla_processed_messages") -> sa.Table:
    """The Postgres table of processed messages, on the service's own metadata (for its migrations)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


class PostgresIdempotencyStore(IdempotencyStore):
    """Markers in a Postgres table with a unique key; the database clock decides expiry.

    The unique key is what makes concurrent deliveries safe: a second insert of the same key waits
    for the first transaction and then sees its row, so only one of them wins.
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        table: sa.Table | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
    ) -> None:
        self.engine = engine
        self.table = table if table is not None else processed_table(sa.MetaData())
        self.ttl_seconds = ttl_seconds

    def create_table(self) -> None:
        """Create the table if missing (tests and local runs; services use their migrations)."""
        self.table.create(self.engine, checkfirst=True)

    def _upsert(self, key: str, status: str, seconds: float) -> sa.Insert:
        t = self.table
        stmt = pg_insert(t).values(
            key=key, status=status, expires_at=sa.func.now() + timedelta(seconds=seconds)
        )
        # Take the row over only when it has expired: a stale lease or a marker past its ttl.
        return stmt.on_conflict_do_update(
            index_elements=[t.c.key],
            set_={"status": stmt.excluded.status, "expires_at": stmt.excluded.expires_at},
            where=t.c.expires_at < sa.func.now(),
        ).returning(t.c.key)

    def claim(self, key: str, lease_seconds: float) -> Claim:
        t = self.table
        with self.engine.begin() as conn:
            if conn.execute(self._upsert(key, IN_PROGRESS, lease_seconds)).first() is not None:
                return Claim(ClaimState.NEW)
            row = conn.execute(
                sa.select(t.c.status, sa.func.extract("epoch", t.c.expires_at - sa.func.now())).where(
                    t.c.key == key
                )
            ).first()
        if row is None:  # released between our insert and select: let the next delivery claim it
            return Claim(ClaimState.BUSY, 0.0)
        if row[0] == COMPLETED:
            return Claim(ClaimState.DONE)
        return Claim(ClaimState.BUSY, max(0.0, float(row[1])))

    def extend(self, key: str, lease_seconds: float) -> None:
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(
                t.update()
                .where(t.c.key == key, t.c.status == IN_PROGRESS)
                .values(expires_at=sa.func.now() + timedelta(seconds=lease_seconds))
            )

    def complete(self, key: str) -> None:
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(
                t.update()
                .where(t.c.key == key)
                .values(status=COMPLETED, expires_at=sa.func.now() + timedelta(seconds=self.ttl_seconds))
            )

    def release(self, key: str) -> None:
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(t.delete().where(t.c.key == key, t.c.status == IN_PROGRESS))

    def record(self, conn: sa.Connection, key: str) -> bool:
        """Mark ``key`` processed in the caller's transaction; False means it already was (skip the effect).

        Use it first thing in the handler's transaction::

            with engine.begin() as conn:
                if not store.record(conn, event_key(event)):
                    return
                conn.execute(...)  # the effect

        A redelivery that races the first one blocks on the unique key until that transaction ends:
        if it committed, ``record`` returns False; if it rolled back, the redelivery proceeds.
        """
        return conn.execute(self._upsert(key, COMPLETED, self.ttl_seconds)).first() is not None

    def cleanup(self, batch: int = 1000) -> int:
        """Delete up to ``batch`` expired markers (bounded: a backlog never makes one long transaction)."""
        t = self.table
        expired = sa.select(t.c.key).where(t.c.expires_at < sa.func.now()).limit(batch)
        with self.engine.begin() as conn:
            return conn.execute(t.delete().where(t.c.key.in_(expired.scalar_subquery()))).rowcount


# --- DynamoDB ---------------------------------------------------------------------------------------


class DynamoDBIdempotencyStore(IdempotencyStore):
    """Markers in a DynamoDB table: conditional puts, and ``expires_at`` as the table's TTL attribute.

    The table needs a string partition key (``key_attribute``, default ``id``) and TTL enabled on
    ``expires_at``. DynamoDB deletes expired items up to days late, so the conditions compare
    ``expires_at`` with the clock rather than trusting an item's presence.
    """

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        key_attribute: str = "id",
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.key_attribute = key_attribute
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    def _put(self, key: str, status: str, seconds: float) -> dict[str, Any]:
        now = self.clock()
        return {
            "TableName": self.table_name,
            "Item": {
                self.key_attribute: {"S": key},
                "status": {"S": status},
                "expires_at": {"N": str(int(now + seconds))},
            },
            "ConditionExpression": "attribute_not_exists(#k) OR #exp < :now",
            "ExpressionAttributeNames": {"#k": self.key_attribute, "#exp": "expires_at"},
            "ExpressionAttributeValues": {":now": {"N": str(int(now))}},
        }

    def claim(self, key: str, lease_seconds: float) -> Claim:
        try:
            self.client.put_item(**self._put(key, IN_PROGRESS, lease_seconds))
            return Claim(ClaimState.NEW)
        except self.client.exceptions.ConditionalCheckFailedException:
            pass
        item = self.client.get_item(
            TableName=self.table_name, Key={self.key_attribute: {"S": key}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return Claim(ClaimState.BUSY, 0.0)
        if item["status"]["S"] == COMPLETED:
            return Claim(ClaimState.DONE)
        return Claim(ClaimState.BUSY, max(0.0, float(item["expires_at"]["N"]) - self.clock()))

    def extend(self, key: str, lease_seconds: float) -> None:
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.table_name,
                Key={self.key_attribute: {"S": key}},
                UpdateExpression="SET #exp = :exp",
                ConditionExpression="#st = :inprogress",
                ExpressionAttributeNames={"#exp": "expires_at", "#st": "status"},
                ExpressionAttributeValues={
                    ":exp": {"N": str(int(self.clock() + lease_seconds))},
                    ":inprogress": {"S": IN_PROGRESS},
                },
            )

    def complete(self, key: str) -> None:
        self.client.put_item(
            TableName=self.table_name,
            Item={
                self.key_attribute: {"S": key},
                "status": {"S": COMPLETED},
                "expires_at": {"N": str(int(self.clock() + self.ttl_seconds))},
            },
        )

    def release(self, key: str) -> None:
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.delete_item(
                TableName=self.table_name,
                Key={self.key_attribute: {"S": key}},
                ConditionExpression="#st = :inprogress",
                ExpressionAttributeNames={"#st": "status"},
                ExpressionAttributeValues={":inprogress": {"S": IN_PROGRESS}},
            )

    def transact_item(self, key: str) -> dict[str, Any]:
        """A ``TransactWriteItems`` entry that writes the marker with the handler's own items.

        The transaction fails with ``TransactionCanceledException`` (reason ``ConditionalCheckFailed``
        on this entry) when the event was already processed: treat that as done, not as an error.
        """
        return {"Put": self._put(key, COMPLETED, self.ttl_seconds)}


__all__ = [
    "DEFAULT_TTL_SECONDS",
    "Claim",
    "ClaimState",
    "DynamoDBIdempotencyStore",
    "IdempotencyStore",
    "PostgresIdempotencyStore",
    "event_key",
    "processed_table",
]
