"""Authorizations: created by the provider's answer, moved through their states under a row lock.

States::

    AUTHORIZED --capture--> CAPTURED      capture again: the same CAPTURED (no second capture)
        |
        +------void-------> VOIDED        void again: the same VOIDED
    DECLINED                              final: capture or void of it is 409

Capture of a VOIDED one and void of a CAPTURED one are 409, as are both on a DECLINED one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from flotilla.errors import ProblemError
from services.payments import api
from services.payments.cards import CardSummary
from services.payments.models import AUTHORIZED, CAPTURED, DECLINED, VOIDED, Authorization

STATE_CONFLICT = "urn:flotilla:problem:payment-state-conflict"

# What each operation turns an authorization into, from which states (the target itself included:
# repeating an operation answers the current state and changes nothing).
TRANSITIONS = {
    "capture": (CAPTURED, frozenset({AUTHORIZED, CAPTURED})),
    "void": (VOIDED, frozenset({AUTHORIZED, VOIDED})),
}


def new_id() -> str:
    return f"pa_{uuid.uuid4().hex}"


def authorization_json(row: Authorization) -> dict[str, Any]:
    return api.Authorization(
        id=row.id,
        order_id=row.order_id,
        status=row.status,
        amount_cents=row.amount_cents,
        currency=row.currency,
        card=api.Card(brand=row.card_brand, last4=row.card_last4),
        decline_reason=row.decline_reason,
        created_at=_utc(row.created_at).isoformat(),
        updated_at=_utc(row.updated_at).isoformat(),
    ).model_dump()


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def add(
    session: Session, body: api.AuthorizationIn, card: CardSummary, decline_reason: str | None
) -> Authorization:
    row = Authorization(
        id=new_id(),
        order_id=body.order_id,
        status=DECLINED if decline_reason else AUTHORIZED,
        amount_cents=body.amount_cents,
        currency=body.currency,
        card_brand=card.brand,
        card_last4=card.last4,
        decline_reason=decline_reason,
    )
    session.add(row)
    session.flush()
    return row


def get(session: Session, authorization_id: str, *, for_update: bool = False) -> Authorization:
    stmt = sa.select(Authorization).where(Authorization.id == authorization_id)
    if for_update:
        stmt = stmt.with_for_update()  # a capture and a void racing on one row: one waits for the other
    row = session.scalar(stmt)
    if row is None:
        raise ProblemError(404, "Not Found", f"no authorization {authorization_id}")
    return row


def for_order(session: Session, order_id: str) -> Sequence[Authorization]:
    stmt = sa.select(Authorization).where(Authorization.order_id == order_id)
    return session.scalars(stmt.order_by(Authorization.created_at, Authorization.id)).all()


def transition(session: Session, authorization_id: str, operation: str) -> Authorization:
    """Capture or void; 409 (before any write) when the current state does not allow it."""
    target, allowed = TRANSITIONS[operation]
    row = get(session, authorization_id, for_update=True)
    if row.status not in allowed:
        raise ProblemError(
            409,
            "Conflict",
            f"cannot {operation} a {row.status} authorization",
            type=STATE_CONFLICT,
            reason=f"already_{row.status.lower()}" if row.status != DECLINED else "declined",
            current_status=row.status,
        )
    if row.status != target:
        row.status = target
        session.flush()
    return row
