"""The flask commands: first administrator, demo data, migrations."""

from __future__ import annotations

from sqlalchemy import func, select

from portal.accounts.models import User
from portal.cli.demo import DEMO_ACCOUNTS, DEMO_PANEL
from portal.core.audit import AuditEvent, verify_chain
from portal.extensions import db
from tests.helpers import PortalClient


def test_create_admin_makes_an_audited_administrator(app, runner):
    result = runner.invoke(
        args=["accounts", "create-admin", "--email", "Root@Example.org", "--name", "Ada Admin"],
        input="a long enough password\na long enough password\n",
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = User.by_email(db.session, "root@example.org")
        assert user.role == "administrator"
        event = db.session.scalars(select(AuditEvent)).one()
        assert event.action == "account.created"
        assert event.actor_role == "system"
    PortalClient(app).login("root@example.org", "a long enough password")


def test_create_admin_refuses_a_duplicate_clearly(app, runner):
    args = ["accounts", "create-admin", "--email", "root@example.org", "--name", "A"]
    runner.invoke(args=args, input="a long enough password\na long enough password\n")
    result = runner.invoke(args=args, input="a long enough password\na long enough password\n")
    assert result.exit_code != 0
    assert "already exists" in result.output
    assert "Traceback" not in result.output


def test_create_admin_refuses_a_short_password(app, runner):
    result = runner.invoke(
        args=["accounts", "create-admin", "--email", "a@example.org", "--name", "A"],
        input="short\nshort\n",
    )
    assert result.exit_code != 0
    assert "at least 8 characters" in result.output


def test_demo_data_loads_once_with_one_account_per_role(app, runner):
    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    result = runner.invoke(args=["demo", "load"])
    assert "not loaded" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == len(DEMO_ACCOUNTS) + 2 + len(
            DEMO_PANEL
        )  # two more patients, and the rest of the panel for a quorum
        roles = set(db.session.scalars(select(User.role)))
        assert roles == {str(role) for role, *_ in DEMO_ACCOUNTS}
        from portal.review.models import Protocol, Submission

        # The trial's protocol was approved through the review (the browser tests' demo,
        # with the shipped documents, also has a modification waiting).
        assert db.session.scalar(select(Protocol.status)) == "approved"
        kinds = dict(db.session.execute(select(Submission.kind, Submission.status)).all())
        assert kinds["initial"] == "decided"
        assert verify_chain(db.session).intact
    for _role, email, _name, password in DEMO_ACCOUNTS:
        PortalClient(app).login(email, password)


def test_db_upgrade_is_idempotent(app, runner):
    result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
