"""Boundary incidents: reports, their append-only timeline, assignments, declared conflicts,
and holds on therapists (only the lifting of a hold may change).

Revision ID: a9018c7c1f72
Revises: 76415daaf51e
Create Date: 2026-11-25 21:43:47.275684
"""

import sqlalchemy as sa
from alembic import op

import portal.core.crypto  # custom column types are rendered by their module path
import portal.core.db
from portal.core.append_only import create_append_only_triggers, drop_append_only_triggers

revision = "a9018c7c1f72"
down_revision = "76415daaf51e"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incident",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reporter_id", sa.Integer(), nullable=False),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.Column("therapist_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=24), nullable=False),
        sa.Column("occurred_on", sa.Date(), nullable=False),
        sa.Column("session_kind", sa.String(length=16), nullable=False),
        sa.Column("what_happened", portal.core.crypto.EncryptedText(), nullable=False),
        sa.Column("others_involved", portal.core.crypto.EncryptedText(), nullable=True),
        sa.Column("feels_safe", sa.String(length=8), nullable=False),
        sa.Column("reported_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("severity", sa.String(length=12), nullable=True),
        sa.Column("triaged_at", portal.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("serious_breach_due", sa.Boolean(), nullable=False),
        sa.Column(
            "serious_breach_reported_at", portal.core.db.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("shared_at", portal.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("response", portal.core.crypto.EncryptedText(), nullable=True),
        sa.Column("responded_at", portal.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("outcome_reasons", portal.core.crypto.EncryptedText(), nullable=True),
        sa.Column("closed_at", portal.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "category IN ('touch', 'sexual', 'dual_relationship', 'outside_contact', 'alone', 'coercion', 'confidentiality', 'other')",
            name=op.f("ck_incident_category_known"),
        ),
        sa.CheckConstraint(
            "feels_safe IN ('yes', 'no', 'unsure')", name=op.f("ck_incident_feels_safe_known")
        ),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('no_case', 'retraining', 'suspension', 'referral')",
            name=op.f("ck_incident_outcome_known"),
        ),
        sa.CheckConstraint(
            "session_kind IN ('dosing', 'other_session', 'outside', 'not_sure')",
            name=op.f("ck_incident_session_kind_known"),
        ),
        sa.CheckConstraint(
            "severity IS NULL OR severity IN ('low', 'moderate', 'serious')",
            name=op.f("ck_incident_severity_known"),
        ),
        sa.CheckConstraint(
            "status IN ('reported', 'investigating', 'response_invited', 'closed')",
            name=op.f("ck_incident_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["reporter_id"], ["user_account.id"], name=op.f("fk_incident_reporter_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["therapist_id"],
            ["user_account.id"],
            name=op.f("fk_incident_therapist_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident")),
    )
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incident_reporter_id"), ["reporter_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_incident_therapist_id"), ["therapist_id"], unique=False
        )

    op.create_table(
        "incident_assignment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("assigned_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
            name=op.f("fk_incident_assignment_incident_id_incident"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["user_account.id"],
            name=op.f("fk_incident_assignment_member_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_assignment")),
        sa.UniqueConstraint("incident_id", "member_id", name="uq_incident_member"),
    )
    with op.batch_alter_table("incident_assignment", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incident_assignment_incident_id"), ["incident_id"], unique=False
        )

    op.create_table(
        "incident_conflict",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("declared_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incident.id"], name=op.f("fk_incident_conflict_incident_id_incident")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["user_account.id"],
            name=op.f("fk_incident_conflict_member_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_conflict")),
        sa.UniqueConstraint("incident_id", "member_id", name="uq_incident_conflict"),
    )
    with op.batch_alter_table("incident_conflict", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incident_conflict_incident_id"), ["incident_id"], unique=False
        )

    op.create_table(
        "incident_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", portal.core.crypto.EncryptedText(), nullable=True),
        sa.Column("recording_reference", sa.String(length=200), nullable=True),
        sa.Column("file_name", sa.String(length=200), nullable=True),
        sa.Column("file_type", sa.String(length=64), nullable=True),
        sa.Column("file_size", sa.Integer(), nullable=True),
        sa.Column("file_content", portal.core.crypto.EncryptedBytes(), nullable=True),
        sa.Column("created_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('note', 'evidence', 'triage', 'assignment', 'shared', 'response', 'outcome', 'breach_reported')",
            name=op.f("ck_incident_entry_kind_known"),
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["user_account.id"],
            name=op.f("fk_incident_entry_author_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incident.id"], name=op.f("fk_incident_entry_incident_id_incident")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_entry")),
    )
    with op.batch_alter_table("incident_entry", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incident_entry_incident_id"), ["incident_id"], unique=False
        )
    create_append_only_triggers("incident_entry")

    op.create_table(
        "therapist_hold",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("therapist_id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("placed_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lifted_at", portal.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('safeguard', 'suspension')", name=op.f("ck_therapist_hold_kind_known")
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incident.id"], name=op.f("fk_therapist_hold_incident_id_incident")
        ),
        sa.ForeignKeyConstraint(
            ["therapist_id"],
            ["user_account.id"],
            name=op.f("fk_therapist_hold_therapist_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_therapist_hold")),
    )
    with op.batch_alter_table("therapist_hold", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_therapist_hold_incident_id"), ["incident_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_therapist_hold_therapist_id"), ["therapist_id"], unique=False
        )
    create_append_only_triggers(
        "therapist_hold", frozen_columns=("therapist_id", "incident_id", "kind", "placed_at")
    )


def downgrade() -> None:
    with op.batch_alter_table("therapist_hold", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_therapist_hold_therapist_id"))
        batch_op.drop_index(batch_op.f("ix_therapist_hold_incident_id"))

    drop_append_only_triggers("therapist_hold")
    op.drop_table("therapist_hold")
    with op.batch_alter_table("incident_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_entry_incident_id"))

    drop_append_only_triggers("incident_entry")
    op.drop_table("incident_entry")
    with op.batch_alter_table("incident_conflict", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_conflict_incident_id"))

    op.drop_table("incident_conflict")
    with op.batch_alter_table("incident_assignment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_assignment_incident_id"))

    op.drop_table("incident_assignment")
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_therapist_id"))
        batch_op.drop_index(batch_op.f("ix_incident_reporter_id"))

    op.drop_table("incident")
