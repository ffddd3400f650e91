"""Health endpoints, the configuration check, the production entry point, and the logs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from portal.cli.database import upgrade
from portal.core.audit import AuditEvent
from portal.core.db import build_engine
from portal.core.permissions import Role
from portal.extensions import db
from tests.accounts.test_invitations import NEW_PASSWORD, accept, invite_patient


def test_healthz_and_readyz_when_all_is_well(client):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["checks"] == {"database": True, "migrations": True, "signing_key": True}


def test_readyz_names_a_database_behind_on_migrations(make_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = build_engine(url)
    upgrade(engine, "ad2f928ed866")  # the first release's schema
    engine.dispose()
    ready = make_app(url).test_client().get("/readyz")
    assert ready.status_code == 503
    assert ready.json["checks"]["migrations"] is False
    assert ready.json["checks"]["database"] is True


def production(make_app, url, tmp_path, **overrides):
    """A production app whose settings are all safe unless overridden."""
    from portal.records.seal import _generate_identity

    key, cert = tmp_path / "seal-key.pem", tmp_path / "seal-cert.pem"
    _generate_identity(key, cert, "Test Institution")
    settings = {
        "ENVIRONMENT": "production",
        "SECRET_KEY": "x" * 48,
        "RECORD_SIGNING_KEY": str(key),
        "RECORD_SIGNING_CERT": str(cert),
        "PORTAL_BASE_URL": "https://portal.example.org",
        **overrides,
    }
    return make_app(url, **settings)


def test_check_passes_a_safe_production_configuration(make_app, sqlite_url, tmp_path):
    result = production(make_app, sqlite_url, tmp_path).test_cli_runner().invoke(args=["check"])
    assert result.exit_code == 0, result.output
    assert "Configuration OK (production)" in result.output


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SECRET_KEY": "test-secret-key"}, "SECRET_KEY is a default"),
        ({"SECRET_KEY": "short-but-unique"}, "SECRET_KEY is shorter than 32 characters"),
        ({"RECORD_SIGNING_KEY": None}, "self-signed development certificate"),
        ({"PORTAL_BASE_URL": "http://portal.example.org"}, "PORTAL_BASE_URL must be the https://"),
        ({"COOKIES_SECURE": False}, "session cookies are not Secure"),
    ],
)
def test_check_refuses_each_unsafe_production_setting(
    make_app, sqlite_url, tmp_path, overrides, message
):
    app = production(make_app, sqlite_url, tmp_path, **overrides)
    result = app.test_cli_runner().invoke(args=["check"])
    assert result.exit_code == 1
    assert message in result.output


def test_the_production_entry_point_refuses_to_start_unsafely(tmp_path, sqlite_url):
    env = {
        **os.environ,
        "PORTAL_ENVIRONMENT": "production",
        "PORTAL_DATABASE_URL": sqlite_url,
        "PORTAL_INSTANCE_PATH": str(tmp_path / "instance"),
    }
    run = subprocess.run(
        [sys.executable, "-c", "import portal.wsgi"], env=env, capture_output=True, text=True
    )
    assert run.returncode != 0
    assert "refusing to start in production" in run.stderr
    assert "SECRET_KEY is a default" in run.stderr
    assert "DATA_ENCRYPTION_KEY was generated" in run.stderr


def test_logs_are_json_with_request_ids_and_no_personal_data(app, users, caplog):
    caplog.set_level(logging.INFO, logger="portal")
    therapist = users[Role.THERAPIST]
    link = invite_patient(app, therapist)
    token = link.rsplit("/", 1)[1]
    accept(app, link)
    from portal.operations.logs import JsonFormatter

    formatter = JsonFormatter()
    with app.test_request_context():
        lines = [json.loads(formatter.format(record)) for record in caplog.records]
    requests = [line for line in lines if line.get("event") == "request"]
    assert requests and all(len(line.get("request_id", "")) >= 8 for line in requests)
    assert {"accounts.accept_invitation", "accounts.login"} <= {r["endpoint"] for r in requests}
    text = caplog.text + "".join(json.dumps(line) for line in lines)
    for secret in (token, NEW_PASSWORD, therapist.password, therapist.email, "Nia Williams"):
        assert secret not in text
    for record in caplog.records:
        assert token not in record.getMessage()


def test_the_request_id_reaches_the_audit_trail(app, users):
    client = app.test_client()
    response = client.get("/account/sign-in", headers={"X-Request-ID": "trace-0123456789"})
    assert response.headers["X-Request-ID"] == "trace-0123456789"
    from tests.helpers import csrf_from

    client.post(
        "/account/sign-in",
        data={
            "email": users[Role.PATIENT].email,
            "password": users[Role.PATIENT].password,
            "csrf_token": csrf_from(response.text),
        },
        headers={"X-Request-ID": "trace-abcdef0123"},
    )
    with app.app_context():
        login = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "account.login")
        ).one()
        assert login.request_id == "trace-abcdef0123"
