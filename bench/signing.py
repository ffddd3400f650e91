"""The signing pipeline: from the countersignature POST to the sealed PDF stored, against
rendering the same HTML with WeasyPrint and sealing it with pyHanko directly, in the same
process and run. Goal: at most 1.25 x."""

from __future__ import annotations

import statistics
import time

from common import bench_app, report

SIGNERS = 12
PASSWORD = "a long and calm benchmark password"  # noqa: S105 - throwaway accounts


def _site(app, signers: int = SIGNERS):
    """The shipped documents in use; one therapist; patients who have signed."""
    from pathlib import Path

    from sqlalchemy import select

    from portal.accounts.models import User
    from portal.accounts.services import create_user
    from portal.cli import demo
    from portal.consent.document_format import read_all
    from portal.consent.documents import import_documents
    from portal.core import audit
    from portal.core.permissions import Role
    from portal.extensions import db

    with app.app_context():
        import_documents(db.session, read_all(Path(app.config["CONSENT_DOCS_PATH"])), audit.SYSTEM)
        demo.load_demo_accounts(db.session)  # puts the first version in use; a demo therapist
        therapist = db.session.scalars(select(User).where(User.role == Role.THERAPIST)).first()
        therapist_password = next(p for r, _e, _n, p in demo.DEMO_ACCOUNTS if r == Role.THERAPIST)
        for n in range(signers):
            patient = create_user(
                db.session,
                email=f"signer{n}@example.org",
                full_name=f"Signer {n}",
                role=Role.PATIENT,
                password=PASSWORD,
                actor=audit.SYSTEM,
            )
            patient.invited_by_id = therapist.id
            db.session.flush()
            demo._sign_demo_consents(db.session, therapist, patient, PASSWORD, countersigned=False)
        db.session.commit()
        return therapist.email, therapist_password


def main() -> None:
    import re

    from sqlalchemy import select

    from portal.consent.journey_models import Consent
    from portal.extensions import db
    from portal.records.render import record_data, render_consent_pdf
    from portal.records.seal import seal

    with bench_app() as (app, _directory, _url):
        email, password = _site(app)
        client = app.test_client()
        page = client.get("/account/sign-in").text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
        token = token[1] if token else re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
        client.post(
            "/account/sign-in", data={"email": email, "password": password, "csrf_token": token}
        )
        with app.app_context():
            waiting = list(db.session.scalars(select(Consent.id).where(Consent.status == "signed")))
        pipeline = []
        for consent_id in waiting:
            began = time.perf_counter()
            response = client.post(
                f"/consent/team/{consent_id}/countersign",
                data={
                    "discussed": "y",
                    "identity_checked": "y",
                    "witnessed_typed": "y",
                    "password": password,
                    "csrf_token": token,
                },
            )
            pipeline.append(time.perf_counter() - began)
            assert response.status_code == 302, response.status_code
        direct = []
        with app.test_request_context():
            for consent_id in waiting:
                consent = db.session.get(Consent, consent_id)
                began = time.perf_counter()
                seal(
                    render_consent_pdf(
                        consent, record_data(consent, "BENCH", consent.completed_at, db.session)
                    )
                )
                direct.append(time.perf_counter() - began)
    # The first of each warms caches (fonts, templates): leave it out of both.
    ours, baseline = statistics.median(pipeline[1:]), statistics.median(direct[1:])
    report(
        "signing pipeline (countersign POST to stored sealed PDF)",
        f"median {ours * 1000:.0f} ms",
        f"render + seal directly {baseline * 1000:.0f} ms",
        ours / baseline,
        "<= 1.25 x",
        ours / baseline <= 1.25,
    )


if __name__ == "__main__":
    main()
