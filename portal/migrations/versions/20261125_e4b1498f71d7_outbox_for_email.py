"""The outbox as a mail queue: messages to an address (invitations, before an account
exists), their one-time links kept encrypted, and a claim so two senders never send one twice.

Revision ID: e4b1498f71d7
Revises: a9018c7c1f72
Create Date: 2026-11-25 22:04:22.817880
"""

import sqlalchemy as sa
from alembic import op

import portal.core.crypto  # custom column types are rendered by their module path
import portal.core.db

revision = "e4b1498f71d7"
down_revision = "a9018c7c1f72"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recipient_email", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("about", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("secret_link", portal.core.crypto.EncryptedText(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("claimed_until", portal.core.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.alter_column("recipient_id", existing_type=sa.INTEGER(), nullable=True)
        batch_op.create_index(batch_op.f("ix_outbox_message_about"), ["about"], unique=False)
    # Messages already queued go to their recipient's address.
    op.execute(
        "UPDATE outbox_message SET recipient_email = "
        "(SELECT email FROM user_account WHERE user_account.id = outbox_message.recipient_id)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM outbox_message WHERE recipient_id IS NULL")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_message_about"))
        batch_op.alter_column("recipient_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("secret_link")
        batch_op.drop_column("about")
        batch_op.drop_column("recipient_email")
