"""Consent documents: versions with a lifecycle, and their immutable text per language.

Revision ID: 42141997781b
Revises: ad2f928ed866
Create Date: 2026-11-25 18:49:53.280849
"""

import sqlalchemy as sa
from alembic import op

import portal.core.db  # custom column types are rendered as portal.core.db.<Type>
from portal.core.append_only import create_append_only_triggers, drop_append_only_triggers

# Copied here (not imported) so that this migration keeps meaning what it meant when written.
IMMUTABLE_TABLES = (
    "document_text",
    "document_section",
    "comprehension_question",
    "optional_consent_item",
    "withdrawal_data_option",
)
VERSION_FROZEN_COLUMNS = (
    "document_id",
    "version",
    "version_major",
    "version_minor",
    "protocol",
    "cooling_off_hours",
    "signatures_json",
    "imported_at",
)


revision = "42141997781b"
down_revision = "ad2f928ed866"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_document",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("created_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_document")),
        sa.UniqueConstraint("slug", name=op.f("uq_consent_document_slug")),
    )
    op.create_table(
        "document_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=20), nullable=False),
        sa.Column("version_major", sa.Integer(), nullable=False),
        sa.Column("version_minor", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(length=100), nullable=False),
        sa.Column("cooling_off_hours", sa.Integer(), nullable=False),
        sa.Column("signatures_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("material_change", sa.Boolean(), nullable=True),
        sa.Column("imported_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status_changed_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("approved_at", portal.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("approved_by_id", sa.Integer(), nullable=True),
        sa.Column("approval_reference", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "status IN ('draft', 'submitted', 'approved', 'active', 'superseded', 'withdrawn')",
            name=op.f("ck_document_version_status_known"),
        ),
        sa.CheckConstraint(
            "cooling_off_hours >= 0", name=op.f("ck_document_version_cooling_off_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["approved_by_id"],
            ["user_account.id"],
            name=op.f("fk_document_version_approved_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["consent_document.id"],
            name=op.f("fk_document_version_document_id_consent_document"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_version")),
        sa.UniqueConstraint("document_id", "version", name="uq_document_version_number"),
    )
    with op.batch_alter_table("document_version", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_document_version_document_id"), ["document_id"], unique=False
        )
        batch_op.create_index(
            "uq_document_version_one_active",
            ["document_id"],
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )

    op.create_table(
        "document_text",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("introduction", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_path", sa.String(length=300), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("imported_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "language IN ('en-GB', 'cy')", name=op.f("ck_document_text_language_known")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["document_version.id"],
            name=op.f("fk_document_text_version_id_document_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_text")),
        sa.UniqueConstraint("version_id", "language", name="uq_document_text_language"),
    )
    with op.batch_alter_table("document_text", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_document_text_version_id"), ["version_id"], unique=False
        )

    op.create_table(
        "comprehension_question",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("text_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("section_key", sa.String(length=64), nullable=False),
        sa.Column("element", sa.String(length=64), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("choices_json", sa.Text(), nullable=False),
        sa.Column("answer", sa.String(length=64), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["text_id"],
            ["document_text.id"],
            name=op.f("fk_comprehension_question_text_id_document_text"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comprehension_question")),
        sa.UniqueConstraint("text_id", "key", name="uq_comprehension_question_key"),
    )
    with op.batch_alter_table("comprehension_question", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_comprehension_question_text_id"), ["text_id"], unique=False
        )

    op.create_table(
        "document_section",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("text_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("elements_json", sa.Text(), nullable=False),
        sa.Column("content_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["text_id"],
            ["document_text.id"],
            name=op.f("fk_document_section_text_id_document_text"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_section")),
        sa.UniqueConstraint("text_id", "key", name="uq_document_section_key"),
    )
    with op.batch_alter_table("document_section", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_document_section_text_id"), ["text_id"], unique=False)

    op.create_table(
        "optional_consent_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("text_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("meaning", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["text_id"],
            ["document_text.id"],
            name=op.f("fk_optional_consent_item_text_id_document_text"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_optional_consent_item")),
        sa.UniqueConstraint("text_id", "key", name="uq_optional_consent_item_key"),
    )
    with op.batch_alter_table("optional_consent_item", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_optional_consent_item_text_id"), ["text_id"], unique=False
        )

    op.create_table(
        "withdrawal_data_option",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("text_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["text_id"],
            ["document_text.id"],
            name=op.f("fk_withdrawal_data_option_text_id_document_text"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withdrawal_data_option")),
        sa.UniqueConstraint("text_id", "key", name="uq_withdrawal_data_option_key"),
    )
    with op.batch_alter_table("withdrawal_data_option", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_withdrawal_data_option_text_id"), ["text_id"], unique=False
        )

    for table in IMMUTABLE_TABLES:
        create_append_only_triggers(table)
    create_append_only_triggers("document_version", frozen_columns=VERSION_FROZEN_COLUMNS)


def downgrade() -> None:
    drop_append_only_triggers("document_version")
    for table in IMMUTABLE_TABLES:
        drop_append_only_triggers(table)
    with op.batch_alter_table("withdrawal_data_option", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_withdrawal_data_option_text_id"))

    op.drop_table("withdrawal_data_option")
    with op.batch_alter_table("optional_consent_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_optional_consent_item_text_id"))

    op.drop_table("optional_consent_item")
    with op.batch_alter_table("document_section", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_document_section_text_id"))

    op.drop_table("document_section")
    with op.batch_alter_table("comprehension_question", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_comprehension_question_text_id"))

    op.drop_table("comprehension_question")
    with op.batch_alter_table("document_text", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_document_text_version_id"))

    op.drop_table("document_text")
    with op.batch_alter_table("document_version", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_document_version_one_active",
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )
        batch_op.drop_index(batch_op.f("ix_document_version_document_id"))

    op.drop_table("document_version")
    op.drop_table("consent_document")
