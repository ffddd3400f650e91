"""fold names for the lists of accounts

Lists sort and search accounts and invitations by name whatever the case and accents. SQLite's
lower() and LIKE fold ASCII letters only (a search for SIÂN missed Siân, and Élise sorted after
z), so the folded name is stored beside the name (portal.accounts.models.name_key; compared
byte by byte, collation "C", on PostgreSQL), and the
index of accounts by role and name uses it instead of lower(full_name). The index holds the
email address too, so that a search of every account, and its count, read the index alone.

The column is added NOT NULL with an empty default, then filled; PostgreSQL then drops the
default. SQLite cannot drop a default without rebuilding a table that every other table refers
to, so there the empty default stays in the schema; every insert the portal makes sets the key.

Revision ID: 459519a0894f
Revises: a7d3c5e1f920
Create Date: 2026-11-27 15:10:00

"""

import sqlalchemy as sa
from alembic import op

from portal.accounts.models import NameKey, name_key

revision = "459519a0894f"
down_revision = "a7d3c5e1f920"
branch_labels = None
depends_on = None

TABLES = ("user_account", "invitation")


def upgrade():
    bind = op.get_bind()
    for table in TABLES:
        op.add_column(
            table,
            sa.Column("name_key", NameKey, nullable=False, server_default=""),
        )
        names = bind.execute(sa.text(f"SELECT id, full_name FROM {table}")).all()  # noqa: S608
        if names:
            bind.execute(
                sa.text(f"UPDATE {table} SET name_key = :key WHERE id = :id"),  # noqa: S608
                [{"id": row_id, "key": name_key(name)} for row_id, name in names],
            )
        if bind.dialect.name != "sqlite":
            op.alter_column(table, "name_key", server_default=None)
    op.drop_index("ix_user_account_role_name", table_name="user_account")
    op.create_index(
        "ix_user_account_role_name",
        "user_account",
        ["role", "name_key", "id", "email"],
        unique=False,
    )


def downgrade():
    op.drop_index("ix_user_account_role_name", table_name="user_account")
    op.create_index(
        "ix_user_account_role_name",
        "user_account",
        ["role", sa.text("lower(full_name)"), "id"],
        unique=False,
    )
    for table in TABLES:
        # In place (SQLite 3.35 or later): rebuilding user_account, which every other table
        # refers to, is not worth a downgrade.
        op.drop_column(table, "name_key")
