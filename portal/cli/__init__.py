"""Flask commands, one module per topic."""

from flask import Flask


def register_commands(app: Flask) -> None:
    from portal.cli import accounts, audit, database, demo, documents, mail, operations, records

    for group in (
        database.db_group,
        accounts.accounts_group,
        audit.audit_group,
        demo.demo_group,
        documents.docs_group,
        records.records_group,
        mail.mail_group,
    ):
        app.cli.add_command(group)
    app.cli.add_command(operations.check_command)
