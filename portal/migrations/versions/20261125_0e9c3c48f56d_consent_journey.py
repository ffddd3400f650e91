"""The consent journey: consents, reading time, questions, answers, teach-back, choices, signatures.

Revision ID: 0e9c3c48f56d
Revises: 9f7a7c764825
Create Date: 2026-11-25 19:15:08.849287
"""

import sqlalchemy as sa
from alembic import op

import portal.core.db  # custom column types are rendered as portal.core.db.<Type>
from portal.core.append_only import create_append_only_triggers, drop_append_only_triggers

revision = "0e9c3c48f56d"
down_revision = "9f7a7c764825"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("therapist_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("text_id", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("replaces_id", sa.Integer(), nullable=True),
        sa.Column("reading_keys_json", sa.Text(), nullable=True),
        sa.Column("offered_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("opened_at", portal.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reading_position", sa.Integer(), nullable=False),
        sa.Column("reading_completed_at", portal.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "comprehension_completed_at", portal.core.db.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("choices_saved_at", portal.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("signed_at", portal.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", portal.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('offered', 'in_progress', 'signed', 'complete', 'replaced', 'withdrawn')",
            name=op.f("ck_consent_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["user_account.id"], name=op.f("fk_consent_patient_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["replaces_id"], ["consent.id"], name=op.f("fk_consent_replaces_id_consent")
        ),
        sa.ForeignKeyConstraint(
            ["text_id"], ["document_text.id"], name=op.f("fk_consent_text_id_document_text")
        ),
        sa.ForeignKeyConstraint(
            ["therapist_id"], ["user_account.id"], name=op.f("fk_consent_therapist_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["document_version.id"],
            name=op.f("fk_consent_version_id_document_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent")),
        sa.UniqueConstraint("patient_id", "version_id", name="uq_consent_patient_version"),
    )
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_consent_therapist_id"), ["therapist_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_consent_version_id"), ["version_id"], unique=False)

    op.create_table(
        "comprehension_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("question_key", sa.String(length=64), nullable=False),
        sa.Column("choice", sa.String(length=64), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=False),
        sa.Column("attempted_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consent.id"], name=op.f("fk_comprehension_attempt_consent_id_consent")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comprehension_attempt")),
    )
    with op.batch_alter_table("comprehension_attempt", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_comprehension_attempt_consent_id"), ["consent_id"], unique=False
        )

    op.create_table(
        "optional_choice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("item_key", sa.String(length=64), nullable=False),
        sa.Column("agreed", sa.Boolean(), nullable=False),
        sa.Column("chosen_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consent.id"], name=op.f("fk_optional_choice_consent_id_consent")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_optional_choice")),
        sa.UniqueConstraint("consent_id", "item_key", name="uq_optional_choice_item"),
    )
    with op.batch_alter_table("optional_choice", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_optional_choice_consent_id"), ["consent_id"], unique=False
        )

    op.create_table(
        "patient_question",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("section_key", sa.String(length=64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("asked_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consent.id"], name=op.f("fk_patient_question_consent_id_consent")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_question")),
    )
    with op.batch_alter_table("patient_question", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_patient_question_consent_id"), ["consent_id"], unique=False
        )

    op.create_table(
        "section_visit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("section_key", sa.String(length=64), nullable=False),
        sa.Column("opened_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consent.id"], name=op.f("fk_section_visit_consent_id_consent")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_section_visit")),
    )
    with op.batch_alter_table("section_visit", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_section_visit_consent_id"), ["consent_id"], unique=False
        )

    op.create_table(
        "signature",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("signer_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("printed_name", sa.String(length=200), nullable=False),
        sa.Column("meaning", sa.Text(), nullable=False),
        sa.Column("signed_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("image_png", sa.LargeBinary(), nullable=True),
        sa.Column("bound_json", sa.Text(), nullable=False),
        sa.Column("binding_hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "method IN ('drawn', 'typed', 'password')", name=op.f("ck_signature_method_known")
        ),
        sa.CheckConstraint(
            "role IN ('participant', 'person_taking_consent')", name=op.f("ck_signature_role_known")
        ),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consent.id"], name=op.f("fk_signature_consent_id_consent")
        ),
        sa.ForeignKeyConstraint(
            ["signer_id"], ["user_account.id"], name=op.f("fk_signature_signer_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signature")),
        sa.UniqueConstraint("consent_id", "role", name="uq_signature_consent_role"),
    )
    with op.batch_alter_table("signature", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signature_consent_id"), ["consent_id"], unique=False)

    op.create_table(
        "teach_back",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("question_key", sa.String(length=64), nullable=False),
        sa.Column("raised_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", portal.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_by_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consent.id"], name=op.f("fk_teach_back_consent_id_consent")
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by_id"],
            ["user_account.id"],
            name=op.f("fk_teach_back_resolved_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teach_back")),
    )
    with op.batch_alter_table("teach_back", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_teach_back_consent_id"), ["consent_id"], unique=False)

    # Signatures and every recorded answer are evidence: written once, never changed.
    create_append_only_triggers("signature")
    create_append_only_triggers("comprehension_attempt")


def downgrade() -> None:
    drop_append_only_triggers("comprehension_attempt")
    drop_append_only_triggers("signature")
    with op.batch_alter_table("teach_back", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_teach_back_consent_id"))

    op.drop_table("teach_back")
    with op.batch_alter_table("signature", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signature_consent_id"))

    op.drop_table("signature")
    with op.batch_alter_table("section_visit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_section_visit_consent_id"))

    op.drop_table("section_visit")
    with op.batch_alter_table("patient_question", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_question_consent_id"))

    op.drop_table("patient_question")
    with op.batch_alter_table("optional_choice", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_optional_choice_consent_id"))

    op.drop_table("optional_choice")
    with op.batch_alter_table("comprehension_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_comprehension_attempt_consent_id"))

    op.drop_table("comprehension_attempt")
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_version_id"))
        batch_op.drop_index(batch_op.f("ix_consent_therapist_id"))
        batch_op.drop_index(batch_op.f("ix_consent_patient_id"))

    op.drop_table("consent")
