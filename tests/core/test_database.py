"""Database set-up: SQLite pragmas and locking, migrations that match the models, both backends."""

from __future__ import annotations

import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

import portal.models  # noqa: F401 - all tables on the metadata
from portal.cli.database import downgrade, upgrade
from portal.core.db import Base
from portal.extensions import db


def test_sqlite_uses_wal_busy_timeout_and_foreign_keys(make_app, sqlite_url):
    app = make_app(sqlite_url)
    with app.app_context():
        assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert db.session.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
        assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_sqlite_transactions_take_the_write_lock_at_the_start(make_app, sqlite_url):
    """BEGIN IMMEDIATE: while a transaction is open, nobody else can start writing."""
    app = make_app(sqlite_url)
    path = sqlite_url.removeprefix("sqlite:///")
    with app.app_context():
        db.session.execute(text("SELECT 1"))  # only reads, yet holds the write lock
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        db.session.rollback()
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        other.close()


def test_migrations_match_the_models(app):
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_migrations_downgrade_to_nothing_and_upgrade_again(app):
    with app.app_context():
        engine = db.engine
        downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(engine)
        tables = set(inspect(engine).get_table_names())
    assert {
        "user_account",
        "user_session",
        "invitation",
        "audit_event",
        "audit_chain_head",
    } <= tables


def test_database_url_comes_from_the_environment(monkeypatch, tmp_path):
    from portal import create_app

    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("PORTAL_DATABASE_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    app = create_app({"SECRET_KEY": "x"})
    assert app.config["DATABASE_URL"].endswith("elsewhere.db")


def test_default_database_and_secret_key_live_in_the_instance_folder(monkeypatch, tmp_path):
    from portal import create_app

    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.delenv("PORTAL_DATABASE_URL", raising=False)
    monkeypatch.delenv("PORTAL_SECRET_KEY", raising=False)
    app = create_app()
    assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'instance' / 'portal.db'}"
    key_file = tmp_path / "instance" / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert create_app().config["SECRET_KEY"] == app.config["SECRET_KEY"]
