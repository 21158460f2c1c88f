"""Durable sagas on Postgres: steps with compensations, every outcome recorded, resumable after a crash.

A saga is a business transaction across services that cannot share a database transaction (reserve
stock, authorize a card, confirm an order). It is written as an ordered list of :class:`Step` with a
**pivot**: the step whose success commits the saga.

- Before and at the pivot, a step that fails (a definitive :class:`StepFailed`, or any other error:
  the upstream is down, its circuit is open, the deadline passed) turns the saga round: the
  compensations of every step that *started* run in reverse, so an action whose outcome is unknown
  (a call that timed out) is undone too. Compensations must therefore accept "nothing to undo".
- After the pivot there is no way back: a failing step is retried, with backoff, until it succeeds.
- Every step's start and outcome is appended to a log table, and the saga's progress is saved after
  each step, so a process killed half-way leaves a saga that :meth:`Orchestrator.recover_once` (or
  the :meth:`Orchestrator.run_recovery` loop) finishes or compensates. Actions are re-run after a
  crash, so they must be idempotent: the order id as the idempotency key of every call does it.

**One runner per saga** is a lease on its row (owner and expiry, renewed at every save, every save
fenced by the owner), so a request thread and a recovery loop, or two replicas, never run the same
saga at once; the lease outlives the longest step. **One recovery loop per database** is a Postgres
advisory lock held by the loop's connection: replicas' loops stand by and take over when the holder
dies (its connection, and so the lock, goes with it).
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from flotilla.backoff import Backoff

log = logging.getLogger(__name__)

# A step after the pivot, or a compensation, that fails is due again after 1, 2, 4 ... 60 s.
RETRY_BACKOFF = Backoff(base_seconds=1.0, max_seconds=60.0, full_jitter=False)


class Status(enum.StrEnum):
    RUNNING = "running"
    COMPENSATING = "compensating"
    DONE = "done"
    COMPENSATED = "compensated"


ACTIVE = (Status.RUNNING.value, Status.COMPENSATING.value)


class StepFailed(Exception):
    """A step's definitive refusal (a declined card, no stock): the saga stops and compensates.

    ``reason`` is machine-readable and becomes the saga's reason.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


class LeaseLost(Exception):
    """Another runner holds the saga now (this one outlived its lease): stop without saving."""


@dataclass
class SagaState:
    """What a step sees: the saga's id, its data (the input plus what earlier steps returned) and
    its deadline (epoch seconds), against which a step bounds its calls."""

    id: str
    data: dict[str, Any]
    deadline: float
    reason: str | None = None

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.time())


Action = Callable[[SagaState], Mapping[str, Any] | None]
Compensation = Callable[[SagaState], None]


@dataclass(frozen=True)
class Step:
    """``action`` returns values to merge into the saga's data (or None); ``compensate`` undoes it.
    ``reason`` names a failure that is not a :class:`StepFailed` (``payments_unavailable``)."""

    name: str
    action: Action
    compensate: Compensation | None = None
    reason: str = ""

    def failure_reason(self, err: Exception) -> str:
        if isinstance(err, StepFailed):
            return err.reason
        return self.reason or f"{self.name}_failed"


@dataclass(frozen=True)
class Definition:
    """A kind of saga: its steps in order, the pivot's name, and what to do once compensated."""

    kind: str
    steps: Sequence[Step]
    pivot: str
    on_compensated: Callable[[SagaState], None] = lambda state: None
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(step.name for step in self.steps))
        if self.pivot not in self.names:
            raise ValueError(f"pivot {self.pivot!r} is not a step of {self.kind!r}")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"step names of {self.kind!r} repeat")

    def before_or_at_pivot(self, name: str) -> bool:
        return self.names.index(name) <= self.names.index(self.pivot)


@dataclass(frozen=True)
class Tables:
    sagas: sa.Table
    steps: sa.Table


def saga_tables(metadata: sa.MetaData, prefix: str = "flotilla_saga") -> Tables:
    """The saga and step-log tables, on the service's own metadata so its migrations create them."""
    sagas = sa.Table(
        f"{prefix}s",
        metadata,
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("started", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("completed", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("compensated", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.Text),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    # Recovery reads only active sagas: a partial index keeps the scan small however many finished.
    sa.Index(f"ix_{prefix}s_active", sagas.c.due_at, postgresql_where=sagas.c.status.in_(ACTIVE))
    steps = sa.Table(
        f"{prefix}_steps",
        metadata,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("saga_id", sa.Text, sa.ForeignKey(sagas.c.id, ondelete="CASCADE"), nullable=False),
        sa.Column("step", sa.Text, nullable=False),
        sa.Column("phase", sa.Text, nullable=False),  # action | compensation
        sa.Column("outcome", sa.Text, nullable=False),  # started | succeeded | failed | error
        sa.Column("detail", sa.Text),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    sa.Index(f"ix_{prefix}_steps_saga", steps.c.saga_id, steps.c.id)
    return Tables(sagas, steps)


default_tables = saga_tables(sa.MetaData())


def _default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Orchestrator:
    """Runs sagas of one :class:`Definition`; share one per process (it is thread-safe)."""

    def __init__(
        self,
        engine: sa.Engine,
        definition: Definition,
        *,
        tables: Tables = default_tables,
        lease_seconds: float = 30.0,
        backoff: Backoff | None = None,
        owner: str | None = None,
    ) -> None:
        self.engine = engine
        self.definition = definition
        self.tables = tables
        self.lease = timedelta(seconds=lease_seconds)
        self.backoff = backoff or RETRY_BACKOFF
        self.owner = owner or _default_owner()
        self._steps = {step.name: step for step in definition.steps}

    def create_tables(self) -> None:
        """Create the tables if missing (tests and local runs; services use their migrations)."""
        self.tables.sagas.metadata.create_all(self.engine, tables=[self.tables.sagas, self.tables.steps])

    def begin(
        self, conn: sa.Connection, saga_id: str, data: Mapping[str, Any], deadline_seconds: float
    ) -> None:
        """Record a new saga in the caller's transaction (with the row it is about), leased to this
        runner, so recovery leaves it to the :meth:`run` that follows the commit."""
        conn.execute(
            self.tables.sagas.insert().values(
                id=saga_id,
                kind=self.definition.kind,
                status=Status.RUNNING.value,
                data=dict(data),
                deadline=sa.func.now() + timedelta(seconds=deadline_seconds),
                lease_owner=self.owner,
                lease_until=sa.func.now() + self.lease,
            )
        )

    def status(self, saga_id: str) -> Status | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(self.tables.sagas.c.status).where(self.tables.sagas.c.id == saga_id)
            ).scalar()
        return Status(value) if value else None

    def run(self, saga_id: str) -> Status | None:
        """Run the saga as far as it goes now: to DONE or COMPENSATED, or until a step after the
        pivot (or a compensation) fails and is scheduled again. Returns its status; None if unknown."""
        row = self._claim(saga_id)
        if row is None:
            return self.status(saga_id)
        progress = _Progress.of(row)
        try:
            return self._advance(progress)
        except LeaseLost:
            log.warning("saga %s: lease lost to another runner", saga_id)
            return self.status(saga_id)

    def due(self, limit: int = 50) -> list[str]:
        """Active sagas nobody holds whose retry time has come (oldest first)."""
        s = self.tables.sagas
        query = (
            sa.select(s.c.id)
            .where(
                s.c.kind == self.definition.kind,
                s.c.status.in_(ACTIVE),
                s.c.due_at <= sa.func.now(),
                sa.or_(s.c.lease_until.is_(None), s.c.lease_until < sa.func.now()),
            )
            .order_by(s.c.due_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def recover_once(self, limit: int = 50) -> int:
        """Run every due saga once; returns how many were taken up."""
        ids = self.due(limit)
        for saga_id in ids:
            try:
                self.run(saga_id)
            except Exception:
                log.exception("saga %s: recovery failed, will retry", saga_id)
        return len(ids)

    def run_recovery(self, stopping: threading.Event, interval: float = 1.0) -> None:
        """Recover until ``stopping`` is set, while holding this kind's advisory lock (one loop per
        database does the work; the others wait for the holder's connection to go)."""
        key = zlib.crc32(f"flotilla.saga:{self.definition.kind}".encode()) - 2**31
        while not stopping.is_set():
            try:
                with self.engine.connect() as conn:
                    if conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar():
                        try:
                            while not stopping.is_set():
                                busy = self.recover_once() > 0
                                if not busy:
                                    stopping.wait(interval)
                        finally:
                            conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                            conn.commit()
                    else:
                        conn.rollback()
            except Exception as err:
                log.warning("saga recovery loop failed, retrying in %.1fs: %s", interval, err)
            stopping.wait(interval)

    # --- one runner's progress through a saga -------------------------------------------------

    def _claim(self, saga_id: str) -> sa.Row[Any] | None:
        s = self.tables.sagas
        claim = (
            s.update()
            .where(
                s.c.id == saga_id,
                s.c.status.in_(ACTIVE),
                sa.or_(
                    s.c.lease_until.is_(None), s.c.lease_until < sa.func.now(), s.c.lease_owner == self.owner
                ),
            )
            .values(lease_owner=self.owner, lease_until=sa.func.now() + self.lease)
            .returning(*s.c)
        )
        with self.engine.begin() as conn:
            return conn.execute(claim).first()

    def _advance(self, p: _Progress) -> Status:
        while True:
            if p.status is Status.RUNNING:
                step = next((self._steps[n] for n in self.definition.names if n not in p.completed), None)
                if step is None:
                    p.status = Status.DONE
                    self._save(p, release=True)
                    return p.status
                if not self._act(p, step):
                    return p.status
            elif p.status is Status.COMPENSATING:
                if not self._compensate(p):
                    return p.status
                self.definition.on_compensated(p.state)
                p.status = Status.COMPENSATED
                self._save(p, release=True)
                return p.status
            else:
                return p.status

    def _act(self, p: _Progress, step: Step) -> bool:
        """Run one action; False when the saga stops here for now (scheduled again)."""
        reversible = self.definition.before_or_at_pivot(step.name)
        if reversible and time.time() >= p.state.deadline:
            self._turn_round(p, "deadline_exceeded", step, "the saga's deadline passed before this step")
            return True
        if step.name not in p.started:
            p.started.append(step.name)
        self._save(p, entry=(step.name, "action", "started", None))
        try:
            out = step.action(p.state)
        except Exception as err:
            if reversible:
                self._turn_round(p, step.failure_reason(err), step, _describe(err))
                return True
            self._retry_later(p, (step.name, "action", "error", _describe(err)))
            return False
        p.state.data.update(out or {})
        p.completed.append(step.name)
        p.attempts = 0
        self._save(p, entry=(step.name, "action", "succeeded", None))
        return True

    def _turn_round(self, p: _Progress, reason: str, step: Step, detail: str) -> None:
        log.info("saga %s: %s at %s (%s), compensating", p.state.id, reason, step.name, detail)
        p.status = Status.COMPENSATING
        p.state.reason = reason
        p.attempts = 0
        self._save(p, entry=(step.name, "action", "failed", f"{reason}: {detail}"))

    def _compensate(self, p: _Progress) -> bool:
        for name in reversed(self.definition.names):
            step = self._steps[name]
            if name not in p.started or name in p.compensated or step.compensate is None:
                continue
            try:
                step.compensate(p.state)
            except Exception as err:
                self._retry_later(p, (name, "compensation", "error", _describe(err)))
                return False
            p.compensated.append(name)
            self._save(p, entry=(name, "compensation", "succeeded", None))
        return True

    def _retry_later(self, p: _Progress, entry: tuple[str, str, str, str | None]) -> None:
        delay = self.backoff.delay(p.attempts)
        p.attempts += 1
        log.warning(
            "saga %s: %s %s failed (%s), again in %.1fs", p.state.id, entry[1], entry[0], entry[3], delay
        )
        self._save(p, entry=entry, release=True, due_in=delay)

    def _save(
        self,
        p: _Progress,
        *,
        entry: tuple[str, str, str, str | None] | None = None,
        release: bool = False,
        due_in: float = 0.0,
    ) -> None:
        s, steps = self.tables.sagas, self.tables.steps
        values: dict[str, Any] = {
            "status": p.status.value,
            "data": p.state.data,
            "reason": p.state.reason,
            "started": p.started,
            "completed": p.completed,
            "compensated": p.compensated,
            "attempts": p.attempts,
            "updated_at": sa.func.now(),
            "due_at": sa.func.now() + timedelta(seconds=due_in),
            "lease_until": None if release else sa.func.now() + self.lease,
        }
        if release:
            values["lease_owner"] = None
        with self.engine.begin() as conn:
            fenced = s.update().where(s.c.id == p.state.id, s.c.lease_owner == self.owner).values(**values)
            if conn.execute(fenced).rowcount != 1:
                raise LeaseLost(p.state.id)
            if entry is not None:
                name, phase, outcome, detail = entry
                conn.execute(
                    steps.insert().values(
                        saga_id=p.state.id,
                        step=name,
                        phase=phase,
                        outcome=outcome,
                        detail=(detail or None) and detail[:2000],
                        owner=self.owner,
                    )
                )


@dataclass
class _Progress:
    state: SagaState
    status: Status
    started: list[str]
    completed: list[str]
    compensated: list[str]
    attempts: int

    @classmethod
    def of(cls, row: sa.Row[Any]) -> _Progress:
        deadline = row.deadline if row.deadline.tzinfo else row.deadline.replace(tzinfo=UTC)
        return cls(
            state=SagaState(row.id, dict(row.data), deadline.timestamp(), row.reason),
            status=Status(row.status),
            started=list(row.started),
            completed=list(row.completed),
            compensated=list(row.compensated),
            attempts=row.attempts,
        )


def _describe(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"[:2000]


def step_log(engine: sa.Engine, saga_id: str, tables: Tables = default_tables) -> list[dict[str, Any]]:
    """The saga's log, oldest first: what operators and tests read."""
    steps = tables.steps
    query = sa.select(steps).where(steps.c.saga_id == saga_id).order_by(steps.c.id)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


__all__ = [
    "ACTIVE",
    "Definition",
    "LeaseLost",
    "Orchestrator",
    "SagaState",
    "Status",
    "Step",
    "StepFailed",
    "Tables",
    "default_tables",
    "saga_tables",
    "step_log",
]
