"""Withdrawals (append-only, but for the therapist's acknowledgement), their sealed receipts,
the notification outbox, and rejoining after a withdrawal (a new consent to the same version).

Revision ID: 76415daaf51e
Revises: 38078d6a1f2f
Create Date: 2026-11-25 21:17:03.869902
"""

import sqlalchemy as sa
from alembic import op

import portal.core.crypto  # custom column types are rendered by their module path
import portal.core.db
from portal.core.append_only import create_append_only_triggers, drop_append_only_triggers

revision = "76415daaf51e"
down_revision = "38078d6a1f2f"
branch_labels = None
depends_on = None

# Everything but the therapist's acknowledgement that future sessions are cancelled.
WITHDRAWAL_FROZEN = (
    "consent_id",
    "scope",
    "item_key",
    "data_option_key",
    "reason",
    "channel",
    "communicated_on",
    "recorded_by_id",
    "recorded_at",
    "attestation",
)


def upgrade() -> None:
    op.create_table(
        "outbox_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("link", sa.String(length=300), nullable=False),
        sa.Column("created_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("read_at", portal.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent_at", portal.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", portal.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["user_account.id"],
            name=op.f("fk_outbox_message_recipient_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_message")),
    )
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_message_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_outbox_message_recipient_id"), ["recipient_id"], unique=False
        )

    op.create_table(
        "withdrawal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("item_key", sa.String(length=64), nullable=False),
        sa.Column("data_option_key", sa.String(length=64), nullable=True),
        sa.Column("reason", portal.core.crypto.EncryptedText(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("communicated_on", sa.Date(), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=False),
        sa.Column("recorded_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attestation", sa.Text(), nullable=True),
        sa.Column("acknowledged_at", portal.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(scope = 'optional_item') = (item_key != '')",
            name=op.f("ck_withdrawal_item_only_for_item_scope"),
        ),
        sa.CheckConstraint(
            "channel IN ('portal', 'phone', 'in_person', 'letter', 'email')",
            name=op.f("ck_withdrawal_channel_known"),
        ),
        sa.CheckConstraint(
            "scope IN ('study', 'treatment', 'optional_item')",
            name=op.f("ck_withdrawal_scope_known"),
        ),
        sa.ForeignKeyConstraint(
            ["acknowledged_by_id"],
            ["user_account.id"],
            name=op.f("fk_withdrawal_acknowledged_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consent.id"], name=op.f("fk_withdrawal_consent_id_consent")
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"],
            ["user_account.id"],
            name=op.f("fk_withdrawal_recorded_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withdrawal")),
        sa.UniqueConstraint("consent_id", "scope", "item_key", name="uq_withdrawal_once"),
    )
    with op.batch_alter_table("withdrawal", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_withdrawal_consent_id"), ["consent_id"], unique=False)
    create_append_only_triggers("withdrawal", frozen_columns=WITHDRAWAL_FROZEN)

    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_consent_patient_version"), type_="unique")
        batch_op.create_index(
            "uq_consent_patient_version_open",
            ["patient_id", "version_id"],
            unique=True,
            sqlite_where=sa.text("status != 'withdrawn'"),
            postgresql_where=sa.text("status != 'withdrawn'"),
        )

    # SQLite rebuilds the table: its append-only triggers go with the old one and are remade.
    drop_append_only_triggers("record")
    with op.batch_alter_table("record", schema=None) as batch_op:
        batch_op.add_column(sa.Column("withdrawal_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_record_withdrawal_id"), ["withdrawal_id"], unique=True)
        batch_op.create_foreign_key(
            batch_op.f("fk_record_withdrawal_id_withdrawal"),
            "withdrawal",
            ["withdrawal_id"],
            ["id"],
        )
        batch_op.drop_constraint(op.f("ck_record_kind_known"), type_="check")
        batch_op.create_check_constraint("kind_known", "kind IN ('consent', 'withdrawal')")
        batch_op.create_check_constraint(
            "receipt_has_withdrawal", "(kind = 'withdrawal') = (withdrawal_id IS NOT NULL)"
        )
    create_append_only_triggers("record")


def downgrade() -> None:
    drop_append_only_triggers("record")
    with op.batch_alter_table("record", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_record_receipt_has_withdrawal"), type_="check")
        batch_op.drop_constraint(op.f("ck_record_kind_known"), type_="check")
        batch_op.create_check_constraint("kind_known", "kind IN ('consent')")
        batch_op.drop_constraint(
            batch_op.f("fk_record_withdrawal_id_withdrawal"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_record_withdrawal_id"))
        batch_op.drop_column("withdrawal_id")
    create_append_only_triggers("record")

    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_consent_patient_version_open",
            sqlite_where=sa.text("status != 'withdrawn'"),
            postgresql_where=sa.text("status != 'withdrawn'"),
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_consent_patient_version"), ["patient_id", "version_id"]
        )

    with op.batch_alter_table("withdrawal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_withdrawal_consent_id"))

    drop_append_only_triggers("withdrawal")
    op.drop_table("withdrawal")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_message_recipient_id"))
        batch_op.drop_index(batch_op.f("ix_outbox_message_created_at"))

    op.drop_table("outbox_message")
