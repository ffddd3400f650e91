"""Two app servers (gunicorn, separate processes and instance folders) on one PostgreSQL
database: a patient's journey moves between them at every step, and nothing is lost."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from sqlalchemy import select

from portal.consent.journey_models import Consent
from portal.core.audit import verify_chain
from portal.extensions import db
from portal.records.models import Record
from portal.records.seal import _generate_identity
from tests.conftest import TEST_CONFIG
from tests.consent.journey_helpers import PNG_DATA_URL, set_up_journey
from tests.helpers import csrf_from

GUNICORN = Path(sys.executable).parent / "gunicorn"


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """A cookie-keeping HTTP client, as one person's browser: the same cookies on both servers."""

    def __init__(self) -> None:
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(CookieJar()), NoRedirects()
        )

    def get(self, url: str) -> tuple[int, str]:
        status, body = self._open(urllib.request.Request(url))
        return status, body.decode()

    def download(self, url: str) -> tuple[int, bytes]:
        return self._open(urllib.request.Request(url))

    def post(self, url: str, form_page: str, data: dict) -> tuple[int, str]:
        """Submit a form whose page was fetched (from either server) with its CSRF token."""
        _status, page = self.get(form_page)
        body = urllib.parse.urlencode({"csrf_token": csrf_from(page), **data}).encode()
        status, answer = self._open(urllib.request.Request(url, data=body, method="POST"))
        return status, answer.decode()

    def _open(self, request) -> tuple[int, bytes]:
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def two_servers(make_app, postgres_url, tmp_path):
    journey = set_up_journey(make_app, postgres_url, tmp_path)
    key, cert = tmp_path / "seal-key.pem", tmp_path / "seal-cert.pem"
    _generate_identity(key, cert, "Test Institution")
    servers, urls, logs = [], [], []
    for number in (1, 2):
        port = free_port()
        env = {
            **os.environ,
            "PORTAL_DATABASE_URL": postgres_url,
            "PORTAL_ENVIRONMENT": "development",
            "PORTAL_SECRET_KEY": "two-servers-share-this-secret-key-0123456789",
            "PORTAL_DATA_ENCRYPTION_KEY": TEST_CONFIG["DATA_ENCRYPTION_KEY"],
            "PORTAL_RECORD_SIGNING_KEY": str(key),
            "PORTAL_RECORD_SIGNING_CERT": str(cert),
            "PORTAL_CONSENT_DOCS_PATH": journey.app.config["CONSENT_DOCS_PATH"],
            "PORTAL_INSTANCE_PATH": str(tmp_path / f"instance-{number}"),  # nothing shared
            "PORTAL_MFA_REQUIRED_FOR_STAFF": "false",
            "PORTAL_ARGON2_TIME_COST": "1",
            "PORTAL_ARGON2_MEMORY_COST": "1024",
            "PORTAL_ARGON2_PARALLELISM": "1",
        }
        log = (tmp_path / f"server-{number}.log").open("w")
        logs.append(log)
        command = [str(GUNICORN), "-w", "1", "-b", f"127.0.0.1:{port}"]
        command += ["--control-socket", str(tmp_path / f"gunicorn-{number}.ctl")]
        servers.append(
            subprocess.Popen(
                [*command, "portal.wsgi:app"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url in urls:
            _wait_until_ready(url)
        yield journey, urls
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
        for log in logs:
            log.close()
    for number in (1, 2):
        assert "Traceback" not in (tmp_path / f"server-{number}.log").read_text()


def _wait_until_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} never became ready")


def test_a_patient_journey_across_two_servers(two_servers):
    journey, (a, b) = two_servers
    consent = journey.consent_id
    patient = Browser()
    status, _ = patient.post(
        f"{a}/account/sign-in",
        f"{b}/account/sign-in",
        {"email": journey.patient.email, "password": journey.patient.password},
    )
    assert status == 302
    assert patient.get(f"{b}/consent/")[0] == 200  # signed in on A, recognised by B

    for position in range(4):  # read on one server, move on through the other
        reader, mover = (a, b) if position % 2 == 0 else (b, a)
        status, page = patient.get(f"{reader}/consent/{consent}/read/{position}?note=seen")
        assert status == 200
        visit = re.search(r'name="visit_id" value="(\d+)"', page)[1]
        status, _ = patient.post(
            f"{mover}/consent/{consent}/read/{position}",
            f"{reader}/consent/",
            {"visit_id": visit, "direction": "next"},
        )
        assert status == 302
    status, _ = patient.post(f"{a}/comprehension/{consent}", f"{b}/consent/", {"choice": "a"})
    assert status in (200, 302)
    status, _ = patient.post(
        f"{b}/consent/{consent}/choices", f"{a}/consent/", {"item_future-contact": "yes"}
    )
    assert status == 302
    journey.past_cooling_off()
    status, _ = patient.post(
        f"{a}/consent/{consent}/sign",
        f"{b}/consent/",
        {
            "attest": "y",
            "typed_name": "Sam Taylor",
            "method": "drawn",
            "signature": PNG_DATA_URL,
            "password": journey.patient.password,
        },
    )
    assert status == 302

    therapist = Browser()
    status, _ = therapist.post(
        f"{b}/account/sign-in",
        f"{a}/account/sign-in",
        {"email": journey.therapist.email, "password": journey.therapist.password},
    )
    assert status == 302
    status, _ = therapist.post(
        f"{a}/consent/team/{consent}/countersign",
        f"{b}/consent/team",
        {"discussed": "y", "identity_checked": "y", "password": journey.therapist.password},
    )
    assert status == 302
    # The record sealed on one server downloads from the other.
    with journey.app.app_context():
        assert db.session.get(Consent, consent).status == "complete"
        (record,) = db.session.scalars(select(Record)).all()
        uid, pdf = record.uid, record.pdf
        assert verify_chain(db.session).intact
    status, downloaded = patient.download(f"{b}/records/{uid}.pdf")
    assert status == 200
    assert downloaded == pdf
