"""Dashboards and audit filters at scale: every oversight page at 100,000 synthetic patients and
about a million audit events, served by gunicorn (2 sync workers) on loopback. Each page is asked
for sequentially (one reader at a time, so the figure is the page's own cost) and its 95th
percentile compared with the bare Flask + Jinja + SQLite page measured the same way in the same
run. Goal: p95 at most 300 ms on every page.

The dataset is built once by `flask demo generate --patients N` (several minutes) and kept in
bench/.data/ for later runs; BENCH_PATIENTS changes N.
"""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import ROOT, gunicorn_server, report, sign_in

PATIENTS = int(os.environ.get("BENCH_PATIENTS", "100000"))
DATA = ROOT / "bench" / ".data"
WARM_UP = 3
REQUESTS = 40
GOAL_MS = 300.0
SECRET_KEY = "bench-secret-key-0123456789abcdef0123456789"  # noqa: S105 - throwaway bench key
SESSION_COOKIE = "portal_session"  # as portal/config.py names it in development
DATA_KEY = "qLUPqJ9bY6I5s0b0wEnUhG3R8oJrV7m3W5S0XbVmP1g="


def _environment(database: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PORTAL_DATABASE_URL": f"sqlite:///{database}",
        "PORTAL_SECRET_KEY": SECRET_KEY,
        "PORTAL_DATA_ENCRYPTION_KEY": DATA_KEY,
        "PORTAL_ENVIRONMENT": "development",
        "PORTAL_MFA_REQUIRED_FOR_STAFF": "false",
        "PORTAL_RATELIMIT_ENABLED": "false",
        "PORTAL_INSTANCE_PATH": str(DATA / "instance"),
    }


def dataset() -> Path:
    """The generated database, built on first use (and rebuilt if a build was interrupted)."""
    database = DATA / f"oversight-{PATIENTS}.db"
    done = database.with_suffix(".done")
    flask = [str(Path(sys.executable).parent / "flask"), "--app", "portal"]
    env = _environment(database)
    if database.exists() and done.exists():
        # A dataset kept from an earlier run gets the migrations added since (quick at head).
        subprocess.run([*flask, "db", "upgrade"], env=env, cwd=ROOT, check=True)  # noqa: S603
        return database
    DATA.mkdir(parents=True, exist_ok=True)
    for leftover in (database, done):
        leftover.unlink(missing_ok=True)
    started = time.perf_counter()
    for step in (
        ["db", "upgrade"],
        ["docs", "import"],
        ["demo", "load"],
        ["demo", "generate", "--patients", str(PATIENTS), "--seed", "9"],
    ):
        subprocess.run([*flask, *step], env=env, cwd=ROOT, check=True)  # noqa: S603
    done.write_text(f"built in {time.perf_counter() - started:.0f} s\n")
    return database


def _samples(database: Path) -> dict[str, str]:
    """Real values to filter by: a synthetic patient, a therapist, a protocol, a version, a
    concern, an action, a date range and a keyset cursor half-way down the trail."""
    with sqlite3.connect(database) as connection:

        def one(query: str) -> str:
            return str(connection.execute(query).fetchone()[0])

        return {
            "patient": one(
                "SELECT email FROM user_account WHERE role = 'patient' ORDER BY id DESC LIMIT 1"
            ),
            "actor": one("SELECT email FROM user_account WHERE role = 'therapist' LIMIT 1"),
            "protocol": one("SELECT id FROM protocol ORDER BY id LIMIT 1"),
            "version": one("SELECT version_id FROM consent GROUP BY 1 ORDER BY COUNT(*) DESC"),
            "incident": one("SELECT id FROM incident ORDER BY id LIMIT 1"),
            "middle": one("SELECT last_seq / 2 FROM audit_chain_head"),
            "events": one("SELECT last_seq FROM audit_chain_head"),
            "patients": one("SELECT COUNT(*) FROM user_account WHERE role = 'patient'"),
            # The demo therapist shares in the synthetic caseload (about 2,800 consents).
            "therapist_consents": one(
                "SELECT COUNT(*) FROM consent WHERE therapist_id ="
                " (SELECT id FROM user_account WHERE email = 'therapist@example.org')"
            ),
            "accounts": one("SELECT COUNT(*) FROM user_account"),
            # A search's matches, for its last page: a surname, and a single letter (most).
            "jones": one(
                "SELECT COUNT(*) FROM user_account"
                " WHERE name_key LIKE '%jones%' OR email LIKE '%jones%'"
            ),
            "letter": one(
                "SELECT COUNT(*) FROM user_account WHERE name_key LIKE '%a%' OR email LIKE '%a%'"
            ),
            "therapist_patients": one(
                "SELECT COUNT(*) FROM user_account WHERE role = 'patient' AND invited_by_id ="
                " (SELECT id FROM user_account WHERE email = 'therapist@example.org')"
            ),
            # Synthetic events carry the time they were written (docs/synthetic-data.md).
            "day": one("SELECT substr(MAX(occurred_at), 1, 10) FROM audit_event"),
        }


def pages(sample: dict[str, str]) -> dict[str, str]:
    day = sample["day"]
    return {
        "dashboard: consent funnel": "/oversight/dashboards/consent",
        "dashboard: understanding and readability": "/oversight/dashboards/comprehension",
        "dashboard: withdrawals": "/oversight/dashboards/withdrawals",
        "dashboard: concerns": "/oversight/dashboards/concerns",
        "dashboard: review timelines": "/oversight/dashboards/reviews",
        "oversight overview": "/oversight/",
        "concerns: the panel's list": "/concerns/",
        "audit: newest events": "/oversight/audit",
        "audit: half-way down (keyset)": f"/oversight/audit?older_than={sample['middle']}",
        "audit: by patient": f"/oversight/audit?patient={sample['patient']}",
        "audit: by actor": f"/oversight/audit?actor={sample['actor']}",
        "audit: by action": "/oversight/audit?action=consent.signed",
        "audit: by protocol": f"/oversight/audit?protocol={sample['protocol']}",
        "audit: by version and action": (
            f"/oversight/audit?version={sample['version']}&action=withdrawal.recorded"
        ),
        "audit: by concern": f"/oversight/audit?incident={sample['incident']}",
        "audit: by date range": (
            f"/oversight/audit?date_from={day}&date_to={day}&action=consent.opened"
        ),
    }


def therapist_pages(sample: dict[str, str]) -> dict[str, str]:
    """The therapist's own dashboard and patient list, a page at a time: the first page, the
    last (the deepest offset) of the demo therapist's share of the caseload, and a search."""
    from portal.accounts.account_lists import ACCOUNTS_PER_PAGE
    from portal.consent.team_overview import CONSENTS_PER_PAGE

    consents = int(sample["therapist_consents"])
    last = max(1, math.ceil(consents / CONSENTS_PER_PAGE))
    patients = int(sample["therapist_patients"])
    last_of_patients = max(1, math.ceil(patients / ACCOUNTS_PER_PAGE))
    patient_list = f"therapist's patients ({patients:,})"
    return {
        f"therapist's dashboard ({consents:,} consents): first page": "/consent/team",
        f"therapist's dashboard ({consents:,} consents): last page": f"/consent/team?page={last}",
        f"{patient_list}: first page": "/account/patients",
        f"{patient_list}: last page": f"/account/patients?page={last_of_patients}",
        f"{patient_list}: search by surname": "/account/patients?search=jones",
    }


def administrator_pages(sample: dict[str, str]) -> dict[str, str]:
    """The administrator's list of accounts: staff (the default), everyone's last page, and a
    search of everyone: its first page and the last page of a surname and of a single letter
    (the deepest offset of the broadest search)."""
    from portal.accounts.account_lists import ACCOUNTS_PER_PAGE

    def last(count: str) -> int:
        return max(1, math.ceil(int(count) / ACCOUNTS_PER_PAGE))

    accounts = f"administrator's accounts ({int(sample['accounts']):,})"
    everyone = f"{accounts}: everyone"
    search = "/account/staff?show=everyone&search="
    return {
        f"{accounts}: staff": "/account/staff",
        f"{everyone}, last page": f"/account/staff?show=everyone&page={last(sample['accounts'])}",
        f"{everyone}, search by surname": f"{search}jones",
        f"{everyone}, search by surname, last page": f"{search}jones&page={last(sample['jones'])}",
        f"{everyone}, search for one letter, last page": (
            f"{search}a&page={last(sample['letter'])}"
        ),
    }


def latencies(url: str, cookie: str | None = None) -> tuple[float, float]:
    """p50 and p95 in ms of sequential requests; every answer must be 200."""
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})  # noqa: S310
    times = []
    for number in range(WARM_UP + REQUESTS):
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - loopback
            response.read()
            if response.status != 200:
                raise SystemExit(f"{url} answered {response.status}")
        if number >= WARM_UP:
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.95) - 1]


def main() -> None:
    database = dataset()
    sample = _samples(database)
    print(f"dataset: {sample['patients']} patients, {sample['events']} audit events")
    work = Path(tempfile.mkdtemp(prefix="bench-dashboards-"))
    env = _environment(database)
    with gunicorn_server("portal.wsgi:app", env, work, "portal") as base:
        cookie = sign_in(base, "chair@example.org", "demo-chair-pass", SESSION_COOKIE)
        measured = {name: latencies(base + path, cookie) for name, path in pages(sample).items()}
        therapist = sign_in(base, "therapist@example.org", "demo-therapist-pass", SESSION_COOKIE)
        for name, path in therapist_pages(sample).items():
            measured[name] = latencies(base + path, therapist)
        administrator = sign_in(base, "admin@example.org", "demo-admin-pass", SESSION_COOKIE)
        for name, path in administrator_pages(sample).items():
            measured[name] = latencies(base + path, administrator)

    sys.path.insert(0, str(ROOT / "bench" / "baseline"))
    from bare_app import create_database

    baseline_db = work / "baseline.db"
    create_database(str(baseline_db))
    baseline_env = {
        **os.environ,
        "BASELINE_DATABASE": str(baseline_db),
        "PYTHONPATH": str(ROOT / "bench" / "baseline"),
    }
    with gunicorn_server("bare_app:app", baseline_env, work, "baseline") as base:
        _base_p50, base_p95 = latencies(f"{base}/")
    shutil.rmtree(work, ignore_errors=True)

    scale = f"{int(sample['patients']):,} patients, {int(sample['events']):,} events"
    for name, (p50, p95) in measured.items():
        report(
            f"dashboards at scale: {name} ({scale}; sequential, gunicorn 2 sync workers)",
            f"p95 {p95:.0f} ms, p50 {p50:.0f} ms",
            f"bare Flask + Jinja + SQLite p95 {base_p95:.1f} ms",
            p95 / base_p95,
            f"p95 <= {GOAL_MS:.0f} ms",
            p95 <= GOAL_MS,
        )


if __name__ == "__main__":
    main()
