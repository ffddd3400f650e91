"""Database set-up: SQLite pragmas and locking, migrations that match the models, both backends."""

from __future__ import annotations

import logging
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


def _reads_only_app(make_app, sqlite_url):
    """An app with three reads_only pages: one that reads, two that wrongly write."""
    from sqlalchemy import select, update

    from portal.core.audit import AuditChainHead
    from portal.core.db import reads_only
    from portal.core.permissions import public
    from portal.extensions import csrf

    app = make_app(sqlite_url)

    def reading():
        return str(db.session.scalar(select(AuditChainHead.last_seq)))

    def changing_a_record():
        db.session.get(AuditChainHead, 1).last_hash = "f" * 64
        db.session.flush()
        return "changed"

    def running_an_update():
        db.session.execute(update(AuditChainHead).values(last_hash="f" * 64))
        return "updated"

    shown_again = reads_only(reading)

    def posting_then_showing_the_page():
        """As a POST handler does when it shows its page again after a refused step."""
        db.session.get(AuditChainHead, 1).last_hash = "e" * 64
        db.session.flush()
        return shown_again()  # not committed by reads_only: the request ends in a rollback

    for view in (reading, changing_a_record, running_an_update):
        app.add_url_rule(f"/test/{view.__name__}", view_func=public(reads_only(view)))
    app.add_url_rule(
        "/test/post",
        view_func=csrf.exempt(public(posting_then_showing_the_page)),
        methods=["POST"],
    )
    return app


def test_a_reads_only_view_answers_while_another_connection_writes(make_app, sqlite_url):
    """Its queries run in a DEFERRED transaction: no wait for SQLite's write lock."""
    import time

    app = _reads_only_app(make_app, sqlite_url)
    writer = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        began = time.perf_counter()
        answer = app.test_client().get("/test/reading")
        waited = time.perf_counter() - began
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert answer.status_code == 200
    assert answer.text.isdigit()
    assert waited < 2  # the busy timeout is 5 s or more


@pytest.mark.parametrize("page", ["changing_a_record", "running_an_update"])
def test_a_reads_only_view_that_writes_is_refused_and_saves_nothing(
    make_app, sqlite_url, page, caplog
):
    """A write in a view declared reads_only is a mistake in the code: it fails every time
    (the error page, and ReadsOnlyViewWrote in the log), not only when another writer commits
    meanwhile."""
    from portal.core.audit import AuditChainHead

    app = _reads_only_app(make_app, sqlite_url)
    with app.app_context():
        before = db.session.get(AuditChainHead, 1).last_hash
    with caplog.at_level(logging.ERROR):
        answer = app.test_client().get(f"/test/{page}")
    assert answer.status_code == 500
    assert "ReadsOnlyViewWrote" in caplog.text
    with app.app_context():
        assert db.session.get(AuditChainHead, 1).last_hash == before


def test_a_reads_only_view_shown_by_a_post_handler_commits_nothing_of_the_posts(
    make_app, sqlite_url
):
    """Only a GET of the page itself gets the read transaction: a POST handler that shows the
    page again keeps its own transaction, whose changes are not saved unless it commits."""
    from portal.core.audit import AuditChainHead

    app = _reads_only_app(make_app, sqlite_url)
    with app.app_context():
        before = db.session.get(AuditChainHead, 1).last_hash
    answer = app.test_client().post("/test/post")
    assert answer.status_code == 200 and answer.text.isdigit()
    with app.app_context():
        assert db.session.get(AuditChainHead, 1).last_hash == before
