"""The payments tables (SQLAlchemy 2 ORM); the schema itself is created by ``migrations/``.

Portable types and constraints only, so the local stack's SQLite fallback runs the same code. No
column can hold a card number: ``card_brand`` and ``card_last4`` are all that is kept.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

AUTHORIZED = "AUTHORIZED"
CAPTURED = "CAPTURED"
VOIDED = "VOIDED"
DECLINED = "DECLINED"
STATUSES = (AUTHORIZED, CAPTURED, VOIDED, DECLINED)

IN_PROGRESS = "in_progress"
COMPLETED = "completed"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


class Authorization(Base):
    """One authorization attempt; a declined one is kept too (status DECLINED, with its reason)."""

    __tablename__ = "authorizations"
    __table_args__ = (
        sa.CheckConstraint("amount_cents > 0", name="amount_positive"),
        sa.CheckConstraint(f"status IN {STATUSES!r}", name="known_status"),
    )

    id: Mapped[str] = mapped_column(sa.String(35), primary_key=True)
    order_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    status: Mapped[str] = mapped_column(sa.String(16))
    amount_cents: Mapped[int] = mapped_column(sa.Integer)
    currency: Mapped[str] = mapped_column(sa.String(3))
    card_brand: Mapped[str] = mapped_column(sa.String(16))
    card_last4: Mapped[str] = mapped_column(sa.String(4))
    decline_reason: Mapped[str | None] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class IdempotencyKey(Base):
    """One ``Idempotency-Key``: who holds it while the request runs, then the answer it got.

    ``fingerprint`` is an HMAC over the method, path and body (keyed, because the body carries the
    card number: a plain hash next to ``card_last4`` could be reversed by trying the few numbers left).
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.CheckConstraint(f"state IN {(IN_PROGRESS, COMPLETED)!r}", name="known_state"),)

    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(sa.String(16))
    owner: Mapped[str | None] = mapped_column(sa.String(32))
    locked_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    response_status: Mapped[int | None] = mapped_column(sa.Integer)
    response_body: Mapped[str | None] = mapped_column(sa.Text)
    response_headers: Mapped[str | None] = mapped_column(sa.Text)  # JSON object
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
