"""``Idempotency-Key`` on POST: one effect per key, and the same answer for every retry of it.

Follows draft-ietf-httpapi-idempotency-key-header: a POST without a key is 400, a key sent again
with another request (method, path or body) is 422, and a key whose first request is still running
is 409 once ``wait_seconds`` has passed without it finishing. A key sent again with the same request
gets the stored status, body and ``Location`` back, plus ``Idempotent-Replayed: true``.

How one key gets one effect, with any number of replicas and workers:

1. **Claim** (a short transaction): insert the key's row, ``in_progress``, with a random owner token
   and a lease. The primary key lets one insert win; the losers read the row and replay it, wait for
   it, or take it over when its lease has run out (the holder died: a conditional update on the old
   owner, so only one taker wins).
2. **Work** outside any transaction: the provider call, which may take seconds.
3. **Complete** (one transaction): the effect (the authorization row, its new state) and the stored
   answer are written together, on condition that this request still owns the key. A request whose
   lease was taken over commits nothing.

An answer of 500 or above is not stored and frees the key: it means nothing took effect, so a retry
with the same key tries again. Keys are kept (no expiry yet).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from flask import Response, request
from sqlalchemy.orm import Session

from flotilla.db import Database
from flotilla.errors import PROBLEM_JSON, ProblemError, problem_response
from flotilla.http.deadline import remaining_budget
from services.payments.models import COMPLETED, IN_PROGRESS, IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"  # visible ASCII, as stored in a String(255)
STORED_HEADERS = ("Location",)
POLL_SECONDS = 0.05

KEY_MISSING = "urn:flotilla:problem:idempotency-key-missing"
KEY_REUSED = "urn:flotilla:problem:idempotency-key-reused"
KEY_IN_USE = "urn:flotilla:problem:idempotency-key-in-use"

T = TypeVar("T")


@dataclass(frozen=True)
class Stored:
    """An answer as it is kept and replayed: the exact body text, so a replay is byte for byte the same."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(
        cls, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> Stored:
        return cls(status, json.dumps(body, separators=(",", ":")), dict(headers or {}))

    @classmethod
    def of_problem(cls, err: ProblemError) -> Stored:
        rendered = problem_response(
            err.status, err.title, err.detail, type=err.type, headers=err.headers, **err.extensions
        )
        kept = {name: value for name, value in err.headers.items() if name in STORED_HEADERS}
        return cls(err.status, rendered.get_data(as_text=True), kept)

    def response(self, *, replayed: bool = False) -> Response:
        mimetype = PROBLEM_JSON if self.status >= 400 else "application/json"
        answer = Response(self.body, status=self.status, mimetype=mimetype)
        for name, value in self.headers.items():
            answer.headers[name] = value
        if replayed:
            answer.headers[REPLAYED_HEADER] = "true"
        return answer


class _LostKey(Exception):
    """The lease ran out and another request took the key over: this one must commit nothing."""


def required_key() -> None:
    """A view guard (runs before validation): 400 when the request carries no Idempotency-Key."""
    if not request.headers.get(HEADER):
        raise ProblemError(
            400,
            "Idempotency-Key required",
            f"send an {HEADER} header (a unique value per operation, the same on every retry of it)",
            type=KEY_MISSING,
        )


class IdempotencyKeys:
    """The key ledger of one service database (table ``idempotency_keys``)."""

    def __init__(
        self,
        db: Database,
        fingerprint_key: bytes,
        *,
        wait_seconds: float,
        lease_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.db = db
        self._fingerprint_key = fingerprint_key
        self.wait_seconds = wait_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self._sleep = sleep

    def fingerprint(self, method: str, path: str, body: Mapping[str, Any] | None) -> str:
        """What makes two requests the same request: method, path and body (canonical JSON)."""
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        message = f"{method.upper()}\n{path}\n{canonical}".encode()
        return hmac.new(self._fingerprint_key, message, hashlib.sha256).hexdigest()

    def run(
        self,
        key: str,
        fingerprint: str,
        call: Callable[[], T],
        record: Callable[[Session, T], Stored],
    ) -> Response:
        """``call`` (the provider, no transaction) then ``record`` (the effect and its answer), once per key.

        ``record`` writes through the session it is given and returns the answer; a 4xx problem it
        raises is the answer (stored; it must raise before writing anything). A 5xx from either, or
        any other exception, frees the key and propagates.
        """
        claimed = self._claim(key, fingerprint)
        if isinstance(claimed, Stored):
            return claimed.response(replayed=True)
        owner = claimed
        try:
            result = call()
            stored = self._complete(key, owner, lambda session: record(session, result))
        except _LostKey:
            raise _in_use(key) from None
        except BaseException:
            self._release(key, owner)
            raise
        return stored.response()

    # --- the three steps ------------------------------------------------------------------------------

    def _claim(self, key: str, fingerprint: str) -> str | Stored:
        """This request's owner token, or the stored answer to replay; 422 or 409 as a problem."""
        owner = secrets.token_hex(16)
        budget = remaining_budget()
        wait = self.wait_seconds if budget is None else max(0.0, min(self.wait_seconds, budget))
        give_up_at = time.monotonic() + wait
        while True:
            now = datetime.now(UTC)
            with self.db.session() as session:
                if self._insert(session, key, fingerprint, owner, now):
                    return owner
                row = session.get(IdempotencyKey, key)
                if row is not None:
                    if not hmac.compare_digest(row.fingerprint, fingerprint):
                        raise _reused(key)
                    if row.state == COMPLETED:
                        return _stored(row)
                    if _utc(row.locked_until) <= now and self._take_over(session, row, owner, now):
                        return owner
            if time.monotonic() >= give_up_at:
                raise _in_use(key)
            self._sleep(POLL_SECONDS)

    def _insert(self, session: Session, key: str, fingerprint: str, owner: str, now: datetime) -> bool:
        session.add(
            IdempotencyKey(
                key=key,
                fingerprint=fingerprint,
                state=IN_PROGRESS,
                owner=owner,
                locked_until=now + self.lease,
                created_at=now,
            )
        )
        try:
            session.flush()
        except sa.exc.IntegrityError:
            session.rollback()  # another request holds the key: read its row in a fresh transaction
            return False
        return True

    def _take_over(self, session: Session, row: IdempotencyKey, owner: str, now: datetime) -> bool:
        taken = _changed(
            session,
            sa.update(IdempotencyKey)
            .where(
                IdempotencyKey.key == row.key,
                IdempotencyKey.state == IN_PROGRESS,
                IdempotencyKey.owner == row.owner,
            )
            .values(owner=owner, locked_until=now + self.lease),
        )
        return taken == 1

    def _complete(self, key: str, owner: str, record: Callable[[Session], Stored]) -> Stored:
        with self.db.session() as session:
            try:
                stored = record(session)
            except ProblemError as err:
                if err.status >= 500:
                    raise
                session.rollback()
                stored = Stored.of_problem(err)
            done = _changed(
                session,
                sa.update(IdempotencyKey)
                .where(
                    IdempotencyKey.key == key,
                    IdempotencyKey.state == IN_PROGRESS,
                    IdempotencyKey.owner == owner,
                )
                .values(
                    state=COMPLETED,
                    owner=None,
                    locked_until=None,
                    response_status=stored.status,
                    response_body=stored.body,
                    response_headers=json.dumps(stored.headers),
                    completed_at=datetime.now(UTC),
                ),
            )
            if done != 1:
                raise _LostKey(key)  # rolls the effect back with the rest of the transaction
        return stored

    def _release(self, key: str, owner: str) -> None:
        with self.db.session() as session:
            _changed(
                session,
                sa.delete(IdempotencyKey).where(
                    IdempotencyKey.key == key,
                    IdempotencyKey.state == IN_PROGRESS,
                    IdempotencyKey.owner == owner,
                ),
            )


def _changed(session: Session, statement: sa.Update | sa.Delete) -> int:
    """Rows a conditional UPDATE or DELETE touched: 0 means its condition (the owner) no longer held."""
    result = session.execute(statement.execution_options(synchronize_session=False))
    return int(cast("sa.CursorResult[Any]", result).rowcount)


def _stored(row: IdempotencyKey) -> Stored:
    assert row.response_status is not None and row.response_body is not None
    return Stored(row.response_status, row.response_body, json.loads(row.response_headers or "{}"))


def _utc(moment: datetime | None) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC. No lease reads as expired."""
    if moment is None:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _reused(key: str) -> ProblemError:
    return ProblemError(
        422,
        "Idempotency-Key reused",
        f"{HEADER} {key!r} was sent before with a different request (method, path or body)",
        type=KEY_REUSED,
    )


def _in_use(key: str) -> ProblemError:
    return ProblemError(
        409,
        "Idempotency-Key in use",
        f"a request with {HEADER} {key!r} is still being processed; retry later",
        type=KEY_IN_USE,
        headers={"Retry-After": "1"},
    )
