"""Database triggers that make tables (or some of their columns) unchangeable once written.

Used by migrations for the audit trail, published document text and, later, signed records:
no role, administrators included, can edit or delete those rows through SQL.
"""

from __future__ import annotations

from alembic import op

MESSAGE = "rows of {table} are append-only"


def create_append_only_triggers(table: str, *, frozen_columns: tuple[str, ...] = ()) -> None:
    """Refuse DELETE on `table`, and UPDATE of any row (or only of `frozen_columns`)."""
    message = MESSAGE.format(table=table)
    if op.get_bind().dialect.name == "postgresql":
        if frozen_columns:
            changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in frozen_columns)
            body = (
                f"BEGIN IF TG_OP = 'DELETE' OR ({changed}) THEN RAISE EXCEPTION '{message}'; "
                "END IF; RETURN NEW; END"
            )
        else:
            body = f"BEGIN RAISE EXCEPTION '{message}'; END"
        op.execute(
            f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"{body} $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()"
        )
        return
    columns = f" OF {', '.join(frozen_columns)}" if frozen_columns else ""
    op.execute(
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE{columns} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
    )
    op.execute(
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
    )


def drop_append_only_triggers(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
        op.execute(f"DROP TRIGGER {table}_no_change ON {table}")
        op.execute(f"DROP FUNCTION {table}_append_only()")
    else:
        op.execute(f"DROP TRIGGER {table}_no_update")
        op.execute(f"DROP TRIGGER {table}_no_delete")
