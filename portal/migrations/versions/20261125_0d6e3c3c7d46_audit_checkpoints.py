"""Signed checkpoints of the audit chain (append-only).

Revision ID: 0d6e3c3c7d46
Revises: e4b1498f71d7
Create Date: 2026-11-25 22:20:29.157218
"""

import sqlalchemy as sa
from alembic import op

import portal.core.db  # custom column types are rendered as portal.core.db.<Type>
from portal.core.append_only import create_append_only_triggers, drop_append_only_triggers

revision = "0d6e3c3c7d46"
down_revision = "e4b1498f71d7"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("signed_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoint")),
    )
    create_append_only_triggers("audit_checkpoint")


def downgrade() -> None:
    drop_append_only_triggers("audit_checkpoint")
    op.drop_table("audit_checkpoint")
