"""Fixtures: an app per test on SQLite and on a throwaway PostgreSQL cluster, clients, factories."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from portal import create_app
from portal.cli.database import upgrade
from portal.core.db import build_engine
from tests import pg
from tests.helpers import PortalClient

IN_CI = os.environ.get("CI", "").lower() == "true"

TEST_CONFIG = {
    "TESTING": True,
    "SECRET_KEY": "test-secret-key",
    "DATA_ENCRYPTION_KEY": "qLUPqJ9bY6I5s0b0wEnUhG3R8oJrV7m3W5S0XbVmP1g=",
    "ENVIRONMENT": "development",
    # Real Argon2id, with small parameters so the suite stays quick.
    "ARGON2_TIME_COST": 1,
    "ARGON2_MEMORY_COST": 1024,
    "ARGON2_PARALLELISM": 1,
    # Most tests sign staff in with a password alone; the second-factor tests turn it on.
    "MFA_REQUIRED_FOR_STAFF": False,
    # The suite signs in hundreds of times from one address; the rate-limit tests turn it on.
    "RATELIMIT_ENABLED": False,
}


def unavailable(reason: str) -> None:
    """Skip locally; under CI a missing dependency is a failure, not a skip."""
    if IN_CI:
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


# --- databases ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[pg.Cluster]:
    reason = pg.missing_reason()
    if reason:
        unavailable(reason)
    cluster = pg.start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file that each test copies (the migrations run once per session)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = build_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # closing the last connection checkpoints the WAL into the file
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_cluster: pg.Cluster) -> str:
    """A migrated PostgreSQL database used as the template for each test's database."""
    _admin_execute(postgres_cluster, "CREATE DATABASE portal_template")
    engine = build_engine(postgres_cluster.url("portal_template"))
    upgrade(engine)
    engine.dispose()
    return "portal_template"


_database_numbers = itertools.count(1)


def _admin_execute(cluster: pg.Cluster, statement: str) -> None:
    engine = build_engine(cluster.admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(statement))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> Iterator[str]:
    """A freshly migrated database for one test, on each backend in turn."""
    if request.param == "sqlite":
        target = tmp_path / "portal.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        yield f"sqlite:///{target}"
        return
    yield from _postgres_database(request)


@pytest.fixture
def postgres_url(request) -> Iterator[str]:
    """A freshly migrated PostgreSQL database: for tests about several servers."""
    yield from _postgres_database(request)


def _postgres_database(request) -> Iterator[str]:
    cluster = request.getfixturevalue("postgres_cluster")
    template = request.getfixturevalue("postgres_template")
    name = f"test_{os.getpid()}_{next(_database_numbers)}"
    _admin_execute(cluster, f"CREATE DATABASE {name} TEMPLATE {template}")
    yield cluster.url(name)
    _admin_execute(cluster, f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path) -> Iterator[str]:
    """An empty database (no tables), on each backend in turn: for migration tests."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    cluster = request.getfixturevalue("postgres_cluster")
    name = f"empty_{os.getpid()}_{next(_database_numbers)}"
    _admin_execute(cluster, f"CREATE DATABASE {name}")
    yield cluster.url(name)
    _admin_execute(cluster, f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def sqlite_url(tmp_path, sqlite_template) -> str:
    """A migrated SQLite database, for tests that are about SQLite itself."""
    target = tmp_path / "portal.db"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def make_app(tmp_path, monkeypatch):
    """Build an app on a given database URL, with the instance folder in tmp_path."""
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path / "instance"))
    created = []

    def factory(url: str, **overrides):
        app = create_app({**TEST_CONFIG, "DATABASE_URL": url, **overrides})
        created.append(app)
        return app

    yield factory
    for app in created:
        app.extensions["portal.database"][0].dispose()


@pytest.fixture
def app(make_app, database_url):
    return make_app(database_url)


@pytest.fixture
def db_session(app):
    """The app's session inside an application context."""
    from portal.extensions import db

    with app.app_context():
        yield db.session


@pytest.fixture
def client(app) -> PortalClient:
    return PortalClient(app)


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def users(app):
    """One account per role, created through the real service (and audited)."""
    from tests.factories import create_role_accounts

    return create_role_accounts(app)
