"""Backups that can be trusted: SQLite's online backup, or pg_dump for PostgreSQL; a restore
is followed by checking the audit chain and the seal of every record."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class BackupError(Exception):
    """A backup or restore that could not be done; the message says why."""


def backup(database_url: str, target: Path) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        # The online backup API copies a consistent snapshot while the portal keeps running.
        with sqlite3.connect(url.database) as source, sqlite3.connect(target) as copy:
            source.backup(copy)
        return
    _run_pg("pg_dump", url, ["--format=custom", "--no-owner", f"--file={target}"])


def restore(database_url: str, source: Path) -> None:
    """Into an empty database (refused otherwise: a restore never overwrites live data)."""
    if not source.exists():
        raise BackupError(f"there is no backup file {source}")
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        target = Path(url.database)
        if target.exists() and target.stat().st_size > 0 and _sqlite_has_tables(target):
            raise BackupError(f"{target} already holds data: restore into an empty database")
        with sqlite3.connect(source) as backup_copy, sqlite3.connect(target) as live:
            backup_copy.backup(live)
        return
    if _postgres_has_tables(database_url):
        raise BackupError("the database already holds data: restore into an empty database")
    _run_pg("pg_restore", url, ["--no-owner", "--exit-on-error", str(source)])


def _postgres_has_tables(database_url: str) -> bool:
    from sqlalchemy import text

    from portal.core.db import build_engine

    engine = build_engine(database_url)
    try:
        with engine.connect() as connection:
            count = connection.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            ).scalar_one()
    finally:
        engine.dispose()
    return count > 0


def _sqlite_has_tables(path: Path) -> bool:
    with sqlite3.connect(path) as connection:
        return (
            connection.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[
                0
            ]
            > 0
        )


def _run_pg(tool: str, url, arguments: list[str]) -> None:
    """Run pg_dump or pg_restore on the configured database (password in the environment,
    never on the command line where `ps` would show it)."""
    binary = PG_BIN / tool if (PG_BIN / tool).exists() else shutil.which(tool)
    if binary is None:
        raise BackupError(f"{tool} is not installed")
    dbname = url.set(drivername="postgresql", password=None).render_as_string()
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    command = [str(binary), f"--dbname={dbname}", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, env=env)  # noqa: S603 - no shell; the operator's own settings
    if done.returncode != 0:
        raise BackupError(f"{tool} failed: {done.stderr.strip()[:500]}")


@dataclass(frozen=True)
class RestoreCheck:
    events: int
    records: int
    problems: list[str]


def check_restored(session: Session) -> RestoreCheck:
    """The audit chain verifies and every stored record's seal and hash still hold."""
    import hashlib

    from portal.core.audit import verify_chain
    from portal.records.models import Record
    from portal.records.seal import check_seal

    problems = []
    report = verify_chain(session)
    if not report.intact:
        problems.append(f"audit chain: {report.problem}")
    records = session.scalars(select(Record).order_by(Record.id)).all()
    for record in records:
        seal = check_seal(record.pdf)
        if not seal.sealed_by_portal or hashlib.sha256(record.pdf).hexdigest() != record.sha256:
            problems.append(f"record {record.uid}: {seal.problem or 'its hash does not match'}")
    return RestoreCheck(report.events_verified, len(records), problems)
