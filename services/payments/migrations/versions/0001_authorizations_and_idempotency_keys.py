"""Authorizations and idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "authorizations",
        sa.Column("id", sa.String(35), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("amount_cents", sa.Integer, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("card_brand", sa.String(16), nullable=False),
        sa.Column("card_last4", sa.String(4), nullable=False),
        sa.Column("decline_reason", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_authorizations"),
        sa.CheckConstraint("amount_cents > 0", name="ck_authorizations_amount_positive"),
        sa.CheckConstraint(
            "status IN ('AUTHORIZED', 'CAPTURED', 'VOIDED', 'DECLINED')",
            name="ck_authorizations_known_status",
        ),
    )
    op.create_index("ix_authorizations_order_id", "authorizations", ["order_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(32), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response_status", sa.Integer, nullable=True),
        sa.Column("response_body", sa.Text, nullable=True),
        sa.Column("response_headers", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_idempotency_keys"),
        sa.CheckConstraint("state IN ('in_progress', 'completed')", name="ck_idempotency_keys_known_state"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("authorizations")
