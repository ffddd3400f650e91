"""Upgrades: a database made by the first release, with data, migrates to head intact."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, String, column, select, table

from portal.accounts.models import User
from portal.accounts.passwords import hash_password
from portal.cli.database import upgrade
from portal.core import audit
from portal.core.db import UTCDateTime, build_engine
from portal.extensions import db
from tests.helpers import PortalClient

FIRST_RELEASE = "ad2f928ed866"
PASSWORD = "an old but good password"
# The accounts table as the first release had it (later releases added columns).
FIRST_RELEASE_USERS = table(
    "user_account",
    column("email", String),
    column("full_name", String),
    column("role", String),
    column("password_hash", String),
    column("locale", String),
    column("active", Boolean),
    column("created_at", UTCDateTime()),
)


def test_a_first_release_database_upgrades_to_head_and_still_verifies(make_app, empty_database_url):
    url = empty_database_url
    engine = build_engine(url)
    upgrade(engine, FIRST_RELEASE)
    engine.dispose()
    app = make_app(url)
    with app.app_context():  # data written as the first release wrote it
        db.session.execute(
            FIRST_RELEASE_USERS.insert().values(
                email="early@example.org",
                full_name="Early Patient",
                role="patient",
                password_hash=hash_password(PASSWORD),
                locale="en_GB",
                active=True,
                created_at=dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC),
            )
        )
        for n in range(20):
            audit.record(db.session, "test.event", actor=audit.SYSTEM, after={"n": n})
        db.session.commit()

    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert app.test_client().get("/readyz").status_code == 200
    with app.app_context():  # filled in by the migration that added it
        early = db.session.scalar(select(User).where(User.email == "early@example.org"))
        assert early.name_key == "early patient"
    client = PortalClient(app)
    client.login("early@example.org", PASSWORD)
    assert client.get("/consent/").status_code == 200
