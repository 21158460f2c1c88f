"""Transactional outbox: events written in the state change's own transaction, published by a relay.

Publishing to SNS or EventBridge straight from a request handler loses the event when the process
dies between the database commit and the publish (or publishes an event for a change that then
rolls back). Instead the handler calls :func:`add_event` with its own connection, so the event row
commits or rolls back with the change; :class:`OutboxRelay` publishes committed rows afterwards.

The relay's rules, and why:

- **Claim with ``FOR UPDATE SKIP LOCKED``, small batches.** Several relays (replicas, or a relay in
  each consumer process) share the table: each takes rows nobody else holds, and holds them only
  for one short batch.
- **Publish, then mark sent in the same transaction.** While a relay holds a row no other relay
  can publish it, so in the normal path every row is published once. A relay killed after
  publishing but before committing leaves the row unsent, and it is published again: delivery is
  at-least-once, and consumers absorb the repeat by the event id (``flotilla.messaging.idempotency``).
- **Failures back off per row** (``attempts``, ``available_at``, ``last_error``), so one bad
  destination doesn't block the others. Order is by id within a batch, not guaranteed across
  failures: consumers must not depend on it (SNS standard topics don't keep order either).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.dialects.postgresql import JSONB

from flotilla.backoff import Backoff
from flotilla.messaging.envelope import CloudEvent, from_dict, to_dict

log = logging.getLogger(__name__)

# A failed row is due again after 1, 2, 4 ... 300 s by its attempt count (whole seconds, no jitter).
RELAY_BACKOFF = Backoff(base_seconds=1.0, max_seconds=300.0, full_jitter=False)


class EventPublisher(Protocol):
    """Anything that sends one event somewhere: the SNS and EventBridge publishers fit."""

    def publish(self, event: CloudEvent) -> Any: ...


def outbox_table(metadata: sa.MetaData, name: str = "flotilla_outbox") -> sa.Table:
    """The outbox table, on the service's own metadata so its migrations create it.

    ``destination`` is a logical name (``orders-events``) the relay maps to a publisher, so rows
    don't carry ARNs that differ between environments.
    """
    table = sa.Table(
        name,
        metadata,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("destination", sa.Text, nullable=False),
        sa.Column("event", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
    )
    # The relay's query reads only unsent rows: a partial index keeps it small however many were sent.
    sa.Index(
        f"ix_{name}_pending", table.c.available_at, table.c.id, postgresql_where=table.c.sent_at.is_(None)
    )
    return table


default_table = outbox_table(sa.MetaData())


def add_event(
    conn: sa.Connection, event: CloudEvent, destination: str, *, table: sa.Table = default_table
) -> None:
    """Queue ``event`` for ``destination`` in the caller's transaction; it is published after commit.

    Create the event with ``new_event`` inside the request, so it carries the request's trace context
    and the consumer's span joins the same trace even though the relay publishes later.
    """
    conn.execute(table.insert().values(event_id=event.id, destination=destination, event=to_dict(event)))


class OutboxMetrics:
    """Relay metrics by destination; pass ``registry=None`` in multiprocess mode."""

    def __init__(self, registry: CollectorRegistry | None, service: str = "") -> None:
        kwargs: dict[str, Any] = {"registry": registry}
        self.service = service
        self.published = Counter(
            "outbox_events_published", "Outbox events published.", ["service", "destination"], **kwargs
        )
        self.failed = Counter(
            "outbox_publish_failures",
            "Outbox publish attempts that failed (retried after backoff).",
            ["service", "destination"],
            **kwargs,
        )


class OutboxRelay:
    """Publishes committed outbox rows through ``publishers`` (destination name → publisher).

    Call :meth:`relay_once` from your own loop, or :meth:`run` in a thread until an event is set.
    Sent rows are kept ``retain_sent`` seconds (to answer "was it published, when?") and then purged.
    """

    def __init__(
        self,
        engine: sa.Engine,
        publishers: Mapping[str, EventPublisher],
        *,
        table: sa.Table = default_table,
        batch_size: int = 10,
        backoff: Backoff | None = None,
        poll_interval: float = 1.0,
        retain_sent: float = 24 * 3600.0,
        purge_interval: float = 300.0,
        metrics: OutboxMetrics | None = None,
    ) -> None:
        self.engine = engine
        self.publishers = dict(publishers)
        self.table = table
        self.batch_size = batch_size
        self.backoff = backoff or RELAY_BACKOFF
        self.poll_interval = poll_interval
        self.retain_sent = retain_sent
        self.purge_interval = purge_interval
        self.metrics = metrics or OutboxMetrics(CollectorRegistry())

    def create_table(self) -> None:
        """Create the table if missing (tests and local runs; services use their migrations)."""
        self.table.create(self.engine, checkfirst=True)

    def relay_once(self) -> int:
        """Claim one batch of due rows, publish each, mark it sent or due again later; returns the count."""
        t = self.table
        claim = (
            sa.select(t.c.id, t.c.destination, t.c.event, t.c.attempts)
            .where(t.c.sent_at.is_(None), t.c.available_at <= sa.func.now())
            .order_by(t.c.id)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
        )
        with self.engine.begin() as conn:
            rows = conn.execute(claim).all()
            for row in rows:
                self._publish(conn, row.id, row.destination, row.event, row.attempts)
        return len(rows)

    def _publish(self, conn: sa.Connection, row_id: int, destination: str, doc: Any, attempts: int) -> None:
        t = self.table
        labels = (self.metrics.service, destination)
        try:
            publisher = self.publishers.get(destination)
            if publisher is None:
                raise LookupError(f"no publisher for outbox destination {destination!r}")
            publisher.publish(from_dict(doc))
        except Exception as err:
            delay = self.backoff.whole_seconds(attempts)  # the first failure (attempts=0) is retry 0
            self.metrics.failed.labels(*labels).inc()
            log.warning(
                "outbox row %d to %s failed (attempt %d, next in %ds): %s",
                row_id,
                destination,
                attempts + 1,
                delay,
                err,
            )
            conn.execute(
                t.update()
                .where(t.c.id == row_id)
                .values(
                    attempts=t.c.attempts + 1,
                    available_at=sa.func.now() + timedelta(seconds=delay),
                    last_error=f"{type(err).__name__}: {err}"[:2000],
                )
            )
            return
        self.metrics.published.labels(*labels).inc()
        conn.execute(
            t.update().where(t.c.id == row_id).values(sent_at=sa.func.now(), attempts=t.c.attempts + 1)
        )

    def purge_sent(self, batch: int = 1000) -> int:
        """Delete up to ``batch`` rows sent more than ``retain_sent`` seconds ago."""
        t = self.table
        old = (
            sa.select(t.c.id)
            .where(t.c.sent_at < sa.func.now() - timedelta(seconds=self.retain_sent))
            .limit(batch)
        )
        with self.engine.begin() as conn:
            return conn.execute(t.delete().where(t.c.id.in_(old.scalar_subquery()))).rowcount

    def run(self, stopping: threading.Event) -> None:
        """Relay until ``stopping`` is set: back to back while busy, every ``poll_interval`` when idle.

        A database error is logged and retried after ``poll_interval``; the row it was on is still
        unsent (its transaction rolled back), so nothing is lost.
        """
        next_purge = time.monotonic() + self.purge_interval
        while not stopping.is_set():
            try:
                busy = self.relay_once() == self.batch_size
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + self.purge_interval
                    self.purge_sent()
            except Exception as err:
                busy = False
                log.warning("outbox relay failed, retrying in %.1fs: %s", self.poll_interval, err)
            if not busy:
                stopping.wait(self.poll_interval)

    def check(self) -> None:
        """Readiness: the database answers."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))


__all__ = [
    "RELAY_BACKOFF",
    "EventPublisher",
    "OutboxMetrics",
    "OutboxRelay",
    "add_event",
    "default_table",
    "outbox_table",
]
