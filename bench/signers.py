"""Fifty simultaneous signers: fifty countersignatures (each renders and seals the full consent
record) sent at once to gunicorn with 2 sync workers. Goals: no errors, the audit chain intact,
and signatures per minute at least 80 % of what two cores can do at the render + seal time
measured directly in the same run."""

from __future__ import annotations

import os
import re
import statistics
import threading
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

from common import bench_app, gunicorn_server, report
from signing import _site

SIGNERS = 50
CORES = 2


def _direct_seconds(app) -> float:
    """Median render + seal time of one record, in this process (the capacity's unit)."""
    from sqlalchemy import select

    from portal.consent.journey_models import Consent
    from portal.extensions import db
    from portal.records.render import record_data, render_consent_pdf
    from portal.records.seal import seal

    times = []
    with app.test_request_context():
        for consent_id in db.session.scalars(
            select(Consent.id).where(Consent.status == "signed")
        ).all()[:4]:
            consent = db.session.get(Consent, consent_id)
            began = time.perf_counter()
            seal(
                render_consent_pdf(
                    consent, record_data(consent, "BENCH", consent.opened_at, db.session)
                )
            )
            times.append(time.perf_counter() - began)
    return statistics.median(times[1:])


def main() -> None:
    from sqlalchemy import func, select

    from portal.consent.journey_models import Consent
    from portal.core.audit import verify_chain
    from portal.extensions import db
    from portal.records.models import Record
    from portal.records.seal import _generate_identity

    with bench_app() as (app, directory, url):
        email, password = _site(app, SIGNERS)
        with app.app_context():
            waiting = list(db.session.scalars(select(Consent.id).where(Consent.status == "signed")))
        key, cert = directory / "seal-key.pem", directory / "seal-cert.pem"
        _generate_identity(key, cert, "Benchmark Institution")
        app.config.update(RECORD_SIGNING_KEY=str(key), RECORD_SIGNING_CERT=str(cert))
        direct = _direct_seconds(app)
        env = {
            **os.environ,
            "PORTAL_DATABASE_URL": url,
            "PORTAL_SECRET_KEY": app.config["SECRET_KEY"],
            "PORTAL_DATA_ENCRYPTION_KEY": app.config["DATA_ENCRYPTION_KEY"],
            "PORTAL_ENVIRONMENT": "development",
            "PORTAL_MFA_REQUIRED_FOR_STAFF": "false",
            "PORTAL_RATELIMIT_ENABLED": "false",
            "PORTAL_RECORD_SIGNING_KEY": str(key),
            "PORTAL_RECORD_SIGNING_CERT": str(cert),
        }
        with gunicorn_server("portal.wsgi:app", env, directory, "portal") as base:
            jar = CookieJar()
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
            page = opener.open(base + "/account/sign-in").read().decode()
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)[1]
            opener.open(
                base + "/account/sign-in",
                data=urllib.parse.urlencode(
                    {"csrf_token": token, "email": email, "password": password}
                ).encode(),
            )
            statuses: list[int] = []
            start = threading.Barrier(len(waiting) + 1)

            def countersign(consent_id: int) -> None:
                body = urllib.parse.urlencode(
                    {
                        "discussed": "y",
                        "identity_checked": "y",
                        "witnessed_typed": "y",
                        "password": password,
                        "csrf_token": token,
                    }
                ).encode()
                start.wait()
                try:
                    with opener.open(
                        f"{base}/consent/team/{consent_id}/countersign", data=body, timeout=600
                    ) as response:
                        statuses.append(response.status)
                except urllib.error.HTTPError as error:
                    statuses.append(error.code)

            threads = [threading.Thread(target=countersign, args=(c,)) for c in waiting]
            for thread in threads:
                thread.start()
            start.wait()
            began = time.perf_counter()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - began
        with app.app_context():
            records = db.session.scalar(
                select(func.count(Record.id)).where(Record.kind == "consent")
            )
            intact = verify_chain(db.session).intact
    errors = [s for s in statuses if s not in (200, 302)]
    rate = len(waiting) / elapsed * 60
    capacity = CORES * 60 / direct
    ratio = rate / capacity
    report(
        f"{len(waiting)} simultaneous signers (gunicorn 2 sync workers)",
        f"{rate:.0f} signatures/min ({elapsed:.1f} s), {len(errors)} errors, "
        f"{records} records, chain {'intact' if intact else 'BROKEN'}",
        f"2 cores at {direct * 1000:.0f} ms render + seal = {capacity:.0f}/min",
        ratio,
        ">= 0.80 x, no errors, chain intact",
        ratio >= 0.8 and not errors and intact and records >= len(waiting),
    )


if __name__ == "__main__":
    main()
