"""Database engine, session and declarative base shared by every area.

The portal uses plain SQLAlchemy 2.0 (no Flask-SQLAlchemy) so that the same engine set-up is
used by the web app, the CLI and the tests. One session per application context; views commit
once, services only flush.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from flask import Flask
from flask.globals import app_ctx
from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 30_000
T = TypeVar("T")


class Base(DeclarativeBase):
    """Declarative base with a constraint naming convention (stable migration names)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused: pass an aware UTC datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    """Now, in UTC, timezone-aware."""
    return dt.datetime.now(dt.UTC)


READ_ONLY_OPTION = "portal_read_only"


def build_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE for every transaction.

    BEGIN IMMEDIATE takes the write lock when a transaction starts, so two writers queue on the
    busy timeout instead of failing later with SQLITE_BUSY_SNAPSHOT half-way through (which
    would also let two writers read the same audit chain head).
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            **kwargs,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # let the "begin" hook below decide
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            read_only = connection.get_execution_options().get(READ_ONLY_OPTION)
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _app_context_id() -> int:
    return id(app_ctx._get_current_object())


class Database:
    """The app's engine plus a session scoped to the current application context."""

    def __init__(self) -> None:
        self._app_key = "portal.database"

    def init_app(self, app: Flask) -> None:
        engine = build_engine(app.config["DATABASE_URL"])
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        event.listen(factory, "before_flush", _refuse_flush_in_reads_only_view)
        event.listen(factory, "do_orm_execute", _refuse_statement_in_reads_only_view)
        registry = scoped_session(factory, scopefunc=_app_context_id)
        app.extensions[self._app_key] = (engine, registry)

        @app.teardown_appcontext
        def _remove_session(_exc: BaseException | None) -> None:
            registry.remove()

    def _state(self) -> tuple[Engine, scoped_session[Session]]:
        from flask import current_app

        return current_app.extensions[self._app_key]

    @property
    def engine(self) -> Engine:
        return self._state()[0]

    @property
    def session(self) -> Session:
        return self._state()[1]()

    def get_or_404(self, model: type[T], ident: Any) -> T:
        """Load by primary key or answer 404."""
        from flask import abort

        instance = self.session.get(model, ident)
        if instance is None:
            abort(404)
        return instance


def begin_reading(session: Session) -> None:
    """End the session's transaction and start one that only reads.

    On SQLite it begins DEFERRED, so that a long read (a dashboard's aggregates, an export of a
    million events) sees one snapshot without holding the write lock that every writer waits on.
    Writing in it afterwards is a mistake: SQLite may refuse the upgrade when another writer
    committed meanwhile.
    """
    session.commit()
    start_reading(session)


def start_reading(session: Session) -> None:
    """Begin a transaction that only reads (DEFERRED on SQLite) in a session that has none open,
    committing nothing: for code that must not end a transaction it does not own."""
    session.connection(execution_options={READ_ONLY_OPTION: True})


class ReadsOnlyViewWrote(RuntimeError):
    """A view declared reads_only tried to write: a mistake in the code, found at once."""


P = ParamSpec("P")
R = TypeVar("R")
_READS_ONLY = "portal.reads_only_view"


def reads_only(view: Callable[P, R]) -> Callable[P, R]:
    """Declare a view that only reads: on a GET its queries run in a read transaction
    (DEFERRED on SQLite, as in begin_reading, but committing nothing), so the page answers
    while another request holds SQLite's write lock instead of queueing behind every
    signature. Put it nearest the function, under the access rule: the sign-in check has
    already run and written what it needed. A write in the view through the session (the ORM,
    or an insert, update or delete statement) is refused at once (ReadsOnlyViewWrote) rather
    than failing only when another writer happens to commit; raw SQL text is not inspected."""

    @functools.wraps(view)
    def read_only_view(*args: P.args, **kwargs: P.kwargs) -> R:
        from flask import request
        from flask_login import current_user

        from portal.extensions import db

        current_user._get_current_object()  # the sign-in check may write: let it, before the flag
        session = db.session
        if request.method not in ("GET", "HEAD") or session.in_transaction():
            # Called by a POST handler to show its form again, or inside work already begun:
            # that transaction is not this view's to end (begin_reading would commit it).
            return view(*args, **kwargs)
        start_reading(session)
        session.info[_READS_ONLY] = True
        try:
            return view(*args, **kwargs)
        finally:
            session.info.pop(_READS_ONLY, None)

    return read_only_view


def _refuse_flush_in_reads_only_view(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get(_READS_ONLY) and (
        session.new or session.deleted or any(session.is_modified(o) for o in session.dirty)
    ):
        raise ReadsOnlyViewWrote("a view declared reads_only changed a record")


def _refuse_statement_in_reads_only_view(state: Any) -> None:
    if state.session.info.get(_READS_ONLY) and (
        state.is_insert or state.is_update or state.is_delete
    ):
        raise ReadsOnlyViewWrote("a view declared reads_only ran an INSERT, UPDATE or DELETE")


@contextmanager
def reading_session(engine: Engine) -> Iterator[Session]:
    """A session of its own that only reads (see begin_reading), for work that outlives the
    request's session, such as a streamed download; its transaction ends with the block."""
    with engine.connect() as connection:
        connection.execution_options(**{READ_ONLY_OPTION: True})
        with Session(bind=connection) as session:
            yield session


def is_postgresql(session: Session) -> bool:
    """True when the session is bound to PostgreSQL (used for locking strategy)."""
    return session.get_bind().dialect.name == "postgresql"
