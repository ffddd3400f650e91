"""Real app servers for tests: gunicorn processes on loopback, and a cookie-keeping client."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path

from tests.conftest import TEST_CONFIG
from tests.helpers import csrf_from

GUNICORN = Path(sys.executable).parent / "gunicorn"


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """A cookie-keeping HTTP client, as one person's browser: the same cookies on every server."""

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
        """Submit a form whose page was fetched (from any server) with its CSRF token."""
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


def seal_files(tmp_path: Path) -> tuple[Path, Path]:
    """The installation's sealing key and certificate, made once per test."""
    from portal.records.seal import _generate_identity

    key, cert = tmp_path / "seal-key.pem", tmp_path / "seal-cert.pem"
    if not key.exists():
        _generate_identity(key, cert, "Test Institution")
    return key, cert


def sharing_the_seal(make_app, tmp_path: Path):
    """`make_app` for an in-test app that seals and checks with the servers' certificate."""
    key, cert = seal_files(tmp_path)

    def factory(url: str, **overrides):
        return make_app(
            url, RECORD_SIGNING_KEY=str(key), RECORD_SIGNING_CERT=str(cert), **overrides
        )

    return factory


def server_environment(database_url: str, tmp_path: Path, app, **extra: str) -> dict[str, str]:
    """What every server of one installation shares: the database, keys and settings."""
    key, cert = seal_files(tmp_path)
    return {
        **os.environ,
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_ENVIRONMENT": "development",
        "PORTAL_SECRET_KEY": "servers-share-this-secret-key-0123456789abcdef",
        "PORTAL_DATA_ENCRYPTION_KEY": TEST_CONFIG["DATA_ENCRYPTION_KEY"],
        "PORTAL_RECORD_SIGNING_KEY": str(key),
        "PORTAL_RECORD_SIGNING_CERT": str(cert),
        "PORTAL_CONSENT_DOCS_PATH": app.config["CONSENT_DOCS_PATH"],
        "PORTAL_MFA_REQUIRED_FOR_STAFF": "false",
        "PORTAL_RATELIMIT_ENABLED": "false",
        "PORTAL_ARGON2_TIME_COST": "1",
        "PORTAL_ARGON2_MEMORY_COST": "1024",
        "PORTAL_ARGON2_PARALLELISM": "1",
        **extra,
    }


@contextlib.contextmanager
def gunicorn(env: dict[str, str], tmp_path: Path, name: str, workers: int = 1) -> Iterator[str]:
    """A server with its own instance folder (nothing shared on disk); yields its base URL.
    Its log must not contain a traceback."""
    port = free_port()
    log_path = tmp_path / f"{name}.log"
    command = [str(GUNICORN), "-w", str(workers), "-b", f"127.0.0.1:{port}"]
    command += ["--control-socket", str(tmp_path / f"{name}.ctl"), "--timeout", "120"]
    env = {**env, "PORTAL_INSTANCE_PATH": str(tmp_path / f"instance-{name}")}
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [*command, "portal.wsgi:app"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_ready(url)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]


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
