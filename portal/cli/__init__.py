"""Flask commands, one module per topic."""

from flask import Flask


def register_commands(app: Flask) -> None:
    from portal.cli import (
        accounts,
        audit,
        backups,
        database,
        demo,
        documents,
        export,
        mail,
        operations,
        records,
    )

    for group in (
        database.db_group,
        accounts.accounts_group,
        audit.audit_group,
        demo.demo_group,
        documents.docs_group,
        records.records_group,
        mail.mail_group,
        export.export_group,
    ):
        app.cli.add_command(group)
    for command in (operations.check_command, backups.backup_command, backups.restore_command):
        app.cli.add_command(command)
