"""Sealed PDF records, stored in the database and never changed.

Revision ID: 38078d6a1f2f
Revises: 0e9c3c48f56d
Create Date: 2026-11-25 19:54:54.247406
"""

import sqlalchemy as sa
from alembic import op

import portal.core.db  # custom column types are rendered as portal.core.db.<Type>
from portal.core.append_only import create_append_only_triggers, drop_append_only_triggers

revision = "38078d6a1f2f"
down_revision = "0e9c3c48f56d"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.CheckConstraint("kind IN ('consent')", name=op.f("ck_record_kind_known")),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consent.id"], name=op.f("fk_record_consent_id_consent")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record")),
        sa.UniqueConstraint("sha256", name=op.f("uq_record_sha256")),
        sa.UniqueConstraint("uid", name=op.f("uq_record_uid")),
    )
    with op.batch_alter_table("record", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_record_consent_id"), ["consent_id"], unique=False)

    create_append_only_triggers("record")


def downgrade() -> None:
    drop_append_only_triggers("record")
    with op.batch_alter_table("record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_consent_id"))

    op.drop_table("record")
