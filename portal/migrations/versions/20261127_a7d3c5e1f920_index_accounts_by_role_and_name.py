"""index accounts by role and then name

The administrator's list of accounts pages through every account by role and then A to Z,
whatever the case; without this index a page deep among 100,000 patients sorted all of them
(about 0.5 s).

Revision ID: a7d3c5e1f920
Revises: 5b2e9c41d7a3
Create Date: 2026-11-27 12:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "a7d3c5e1f920"
down_revision = "5b2e9c41d7a3"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_user_account_role_name",
        "user_account",
        ["role", sa.text("lower(full_name)"), "id"],
        unique=False,
    )


def downgrade():
    op.drop_index("ix_user_account_role_name", table_name="user_account")
