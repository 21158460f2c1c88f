"""The transactional outbox against a real Postgres: rows commit with the caller's transaction, the relay
publishes and marks them, retries failures with backoff, and concurrent relays never share a row."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from flotilla.backoff import Backoff
from flotilla.messaging.envelope import CloudEvent, new_event
from flotilla.messaging.outbox import RELAY_BACKOFF, OutboxRelay, add_event, outbox_table
from tests.messaging.conftest import unique


class Recording:
    """A publisher that remembers what it sent; ``fail_first`` ids fail once."""

    def __init__(self, fail_first: set[str] | None = None, pause: float = 0.0) -> None:
        self.sent: list[str] = []
        self.fail_first = set(fail_first or ())
        self.pause = pause
        self._lock = threading.Lock()

    def publish(self, event: CloudEvent) -> None:
        if event.id in self.fail_first:
            self.fail_first.discard(event.id)
            raise ConnectionError("SNS unreachable")
        time.sleep(self.pause)
        with self._lock:
            self.sent.append(event.id)


@pytest.fixture
def table(engine: sa.Engine) -> sa.Table:
    t = outbox_table(sa.MetaData(), unique("outbox").replace("-", "_"))
    t.create(engine)
    return t


def queue_events(
    engine: sa.Engine, table: sa.Table, count: int, destination: str = "events"
) -> list[CloudEvent]:
    events = [new_event("order.placed", {"n": n}, source="tests.orders") for n in range(count)]
    with engine.begin() as conn:
        for e in events:
            add_event(conn, e, destination, table=table)
    return events


def rows(engine: sa.Engine, table: sa.Table) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(table).order_by(table.c.id)))


def test_event_commits_and_rolls_back_with_the_callers_transaction(
    engine: sa.Engine, table: sa.Table
) -> None:
    kept = new_event("order.placed", {"n": 1}, source="tests.orders")
    with pytest.raises(RuntimeError), engine.begin() as conn:
        add_event(conn, new_event("order.placed", {"n": 0}, source="tests.orders"), "events", table=table)
        raise RuntimeError("the order insert failed")
    with engine.begin() as conn:
        add_event(conn, kept, "events", table=table)
    publisher = Recording()
    relay = OutboxRelay(engine, {"events": publisher}, table=table)
    assert relay.relay_once() == 1
    assert publisher.sent == [kept.id]
    [row] = rows(engine, table)
    assert row.sent_at is not None
    assert row.attempts == 1
    assert relay.relay_once() == 0


def test_failed_publish_is_retried_after_backoff(engine: sa.Engine, table: sa.Table) -> None:
    events = queue_events(engine, table, 3)
    publisher = Recording(fail_first={events[1].id})
    relay = OutboxRelay(
        engine, {"events": publisher}, table=table, backoff=Backoff(3600, 3600, full_jitter=False)
    )
    relay.relay_once()
    assert publisher.sent == [events[0].id, events[2].id]
    failed = rows(engine, table)[1]
    assert failed.sent_at is None
    assert failed.attempts == 1
    assert "SNS unreachable" in failed.last_error
    assert relay.relay_once() == 0, "a failed row waits for its backoff"
    with engine.begin() as conn:  # time passes
        conn.execute(table.update().values(available_at=sa.func.now()))
    assert relay.relay_once() == 1
    assert publisher.sent[-1] == events[1].id
    assert rows(engine, table)[1].attempts == 2


def test_the_default_retry_schedule_is_1_2_4_up_to_300_seconds() -> None:
    assert [RELAY_BACKOFF.whole_seconds(attempts) for attempts in range(11)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        300,
        300,
    ]


def test_a_failed_row_is_due_again_after_the_default_backoff(engine: sa.Engine, table: sa.Table) -> None:
    events = queue_events(engine, table, 1)
    relay = OutboxRelay(engine, {"events": Recording(fail_first={events[0].id})}, table=table)
    assert relay.backoff is RELAY_BACKOFF
    relay.relay_once()
    [row] = rows(engine, table)
    assert row.attempts == 1
    # available_at is the relay's now() + the delay; created_at the insert's now(), a moment before
    assert 1.0 <= (row.available_at - row.created_at).total_seconds() < 2.0, "retried after 1 s"


def test_unknown_destination_is_an_error_on_the_row_not_a_crash(engine: sa.Engine, table: sa.Table) -> None:
    queue_events(engine, table, 1, destination="nowhere")
    relay = OutboxRelay(engine, {"events": Recording()}, table=table)
    relay.relay_once()
    [row] = rows(engine, table)
    assert row.sent_at is None
    assert "no publisher for outbox destination 'nowhere'" in row.last_error


def test_concurrent_relays_never_publish_a_row_twice(engine: sa.Engine, table: sa.Table) -> None:
    events = queue_events(engine, table, 120)
    publisher = Recording(pause=0.002)
    relays = [OutboxRelay(engine, {"events": publisher}, table=table, batch_size=5) for _ in range(4)]
    claimed: list[int] = [0] * len(relays)

    def drain(i: int) -> None:
        while (n := relays[i].relay_once()) or any(r.sent_at is None for r in rows(engine, table)):
            claimed[i] += n

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(len(relays))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    counts = Counter(publisher.sent)
    assert set(counts) == {e.id for e in events}
    assert max(counts.values()) == 1
    assert sum(1 for c in claimed if c) > 1, "the relays should have shared the work"


def test_purge_removes_only_old_sent_rows(engine: sa.Engine, table: sa.Table) -> None:
    queue_events(engine, table, 3)
    relay = OutboxRelay(engine, {"events": Recording()}, table=table, batch_size=2, retain_sent=-1)
    relay.relay_once()
    assert relay.purge_sent() == 2
    assert len(rows(engine, table)) == 1
