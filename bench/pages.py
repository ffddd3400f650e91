"""Pages under load: wrk (16 connections, 10 s) against gunicorn with 2 sync workers on
loopback, for a signed-in patient's section page and the therapist's dashboard, against a bare
Flask + Jinja + SQLite page served the same way in the same run (before and after each page,
see _bracketed). Goals: throughput at least 50 % of the baseline's, p99 latency at most 3 x the
baseline's. Two reference pages with no goal show the floor under them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, bench_app, gunicorn_server, report, sign_in

CONNECTIONS = 16
SECONDS = 10


def wrk(url: str, cookie: str | None = None) -> tuple[float, float]:
    """Requests per second and the 99th percentile latency in ms; every answer must be 200."""
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", url]
    if cookie:
        command[1:1] = ["-H", f"Cookie: {cookie}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    if "Non-2xx or 3xx responses" in output:
        raise SystemExit(f"{url} answered with errors under load:\n{output}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])
    value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return rate, p99


def _site(app) -> int:
    """The shipped documents and the demo: a patient part-way through reading, a therapist."""
    from sqlalchemy import select

    from portal.accounts.models import User
    from portal.cli import demo
    from portal.consent.document_format import read_all
    from portal.consent.documents import import_documents
    from portal.consent.journey_models import Consent
    from portal.core import audit
    from portal.extensions import db

    with app.app_context():
        import_documents(db.session, read_all(Path(app.config["CONSENT_DOCS_PATH"])), audit.SYSTEM)
        demo.load_demo_accounts(db.session)
        db.session.commit()
        patient = db.session.scalar(select(User).where(User.email == "patient@example.org"))
        return db.session.scalar(select(Consent.id).where(Consent.patient_id == patient.id))


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed (apt-get install wrk; `make bench` installs it)")
    baseline_db = Path(tempfile.mkdtemp(prefix="baseline-")) / "baseline.db"
    sys.path.insert(0, str(ROOT / "bench" / "baseline"))
    from bare_app import create_database

    create_database(str(baseline_db))
    baseline_env = {
        **os.environ,
        "BASELINE_DATABASE": str(baseline_db),
        "PYTHONPATH": str(ROOT / "bench" / "baseline"),
    }
    with bench_app() as (app, directory, url):
        consent_id = _site(app)
        env = {
            **os.environ,
            "PORTAL_DATABASE_URL": url,
            "PORTAL_SECRET_KEY": app.config["SECRET_KEY"],
            "PORTAL_DATA_ENCRYPTION_KEY": app.config["DATA_ENCRYPTION_KEY"],
            "PORTAL_ENVIRONMENT": "development",
            "PORTAL_MFA_REQUIRED_FOR_STAFF": "false",
            "PORTAL_RATELIMIT_ENABLED": "false",
        }
        with (
            gunicorn_server("portal.wsgi:app", env, directory, "portal") as base,
            gunicorn_server("bare_app:app", baseline_env, directory, "baseline") as bare,
        ):
            cookie_name = app.config["SESSION_COOKIE_NAME"]
            patient = sign_in(base, "patient@example.org", "demo-patient-pass", cookie_name)
            therapist = sign_in(base, "therapist@example.org", "demo-therapist-pass", cookie_name)
            pages = {
                "patient's section page": (f"{base}/consent/{consent_id}/read/0", patient),
                "therapist's dashboard": (f"{base}/consent/team", therapist),
            }
            measured = _bracketed(f"{bare}/", pages)
            references = _bracketed(f"{bare}/", dict(_references(base, patient)))
    shutil.rmtree(baseline_db.parent, ignore_errors=True)
    for name, ((rate, p99), (base_rate, base_p99)) in measured.items():
        throughput = rate / base_rate
        report(
            f"pages: {name} (gunicorn 2 sync workers, wrk {CONNECTIONS} connections, {SECONDS} s)",
            f"{rate:.0f} req/s, p99 {p99:.0f} ms",
            f"bare Flask + Jinja + SQLite {base_rate:.0f} req/s, p99 {base_p99:.0f} ms",
            throughput,
            "throughput >= 0.50 x, p99 <= 3 x",
            throughput >= 0.5 and p99 <= 3 * base_p99,
        )
    for name, ((rate, p99), (base_rate, base_p99)) in references.items():
        report(
            f"pages, for reference: {name}",
            f"{rate:.0f} req/s, p99 {p99:.0f} ms",
            f"bare Flask + Jinja + SQLite {base_rate:.0f} req/s, p99 {base_p99:.0f} ms",
            rate / base_rate,
            "none: shows where a page's cost comes from",
            None,
        )


def _bracketed(bare: str, pages: dict[str, tuple[str, str | None]]) -> dict:
    """Each page measured between two runs of the bare page, and compared with their mean: the
    machine's speed drifts by a third within minutes, so a single baseline run taken before or
    after all the pages can flatter or wrong them."""
    results = {}
    before = wrk(bare)
    for name, (page, cookie) in pages.items():
        figure = wrk(page, cookie)
        after = wrk(bare)
        results[name] = (figure, tuple((b + a) / 2 for b, a in zip(before, after, strict=True)))
        before = after
    return results


def _references(base: str, patient: str) -> list[tuple[str, tuple[str, str | None]]]:
    """Pages with no goal, measured the same way to show the floor under the goals' pages: the
    portal's request hooks with no page (the health check), the NHS.UK layout and a form without
    signing in, then a signed-in page that does no work of its own (the sign-in check, the menu
    and the header only)."""
    return [
        ("the health check: the request hooks, no page", (f"{base}/healthz", None)),
        ("the sign-in page, not signed in", (f"{base}/account/sign-in", None)),
        ("the change-password form, signed in", (f"{base}/account/password", patient)),
    ]


if __name__ == "__main__":
    main()
