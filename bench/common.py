"""Shared by the benchmarks: each measures its own baseline in the same run and reports ratios
(these machines are shared and noisy, so absolute times mean little); a dated row goes to
bench/RESULTS.md."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
HEADER = (
    "| date | benchmark | figure | baseline | ratio | goal | met |\n"
    "| --- | --- | --- | --- | --- | --- | --- |\n"
)

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def report(
    name: str, figure: str, baseline: str, ratio: float, goal: str, met: bool | None
) -> None:
    """Print a result and append its row; `met` is None for a reference figure with no goal."""
    verdict = "REFERENCE" if met is None else "MET" if met else "MISSED"
    print(f"{name}: {figure} against {baseline}: ratio {ratio:.2f} (goal {goal}) {verdict}")
    if not RESULTS.exists():
        RESULTS.write_text(
            "# Benchmark results\n\nAppended by `make bench`; ratios are against a baseline "
            "measured in the same run.\n\n" + HEADER
        )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    with RESULTS.open("a") as handle:
        shown = "-" if met is None else "yes" if met else "no"
        row = [stamp, name, figure, baseline, f"{ratio:.2f}", goal, shown]
        handle.write("| " + " | ".join(row) + " |\n")


@contextmanager
def bench_app(**overrides):
    """A portal on a fresh migrated SQLite database in a temporary instance folder."""
    directory = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    os.environ["PORTAL_INSTANCE_PATH"] = str(directory / "instance")
    from portal import create_app
    from portal.cli.database import upgrade
    from portal.core.db import build_engine

    url = f"sqlite:///{directory / 'portal.db'}"
    engine = build_engine(url)
    upgrade(engine)
    engine.dispose()
    config = {
        "DATABASE_URL": url,
        "SECRET_KEY": "bench-secret-key-0123456789abcdef0123456789",
        "DATA_ENCRYPTION_KEY": "qLUPqJ9bY6I5s0b0wEnUhG3R8oJrV7m3W5S0XbVmP1g=",
        "ENVIRONMENT": "development",
        "MFA_REQUIRED_FOR_STAFF": False,
        "RATELIMIT_ENABLED": False,
        **overrides,
    }
    app = create_app(config)
    try:
        yield app, directory, url
    finally:
        app.extensions["portal.database"][0].dispose()
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def gunicorn_server(target: str, env: dict[str, str], directory: Path, name: str):
    """gunicorn with 2 sync workers on a free loopback port, until the block ends."""
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gunicorn = Path(sys.executable).parent / "gunicorn"
    log = (directory / f"{name}.log").open("w")
    server = subprocess.Popen(  # noqa: S603 - our own gunicorn
        [str(gunicorn), "-w", "2", "-b", f"127.0.0.1:{port}", "--timeout", "120", target],
        env={**env, "PORTAL_INSTANCE_PATH": str(directory / f"instance-{name}")},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/", timeout=1)  # noqa: S310 - loopback http
                break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def sign_in(base: str, email: str, password: str, cookie_name: str) -> str:
    """Sign in through the form; return the session cookie as a `Cookie:` header value."""
    import re
    import urllib.parse
    import urllib.request
    from http.cookiejar import CookieJar

    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base + "/account/sign-in").read().decode()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)[1]
    body = urllib.parse.urlencode({"csrf_token": token, "email": email, "password": password})
    opener.open(base + "/account/sign-in", data=body.encode())
    value = next(c.value for c in jar if c.name == cookie_name)
    return f"{cookie_name}={value}"
