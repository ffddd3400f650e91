"""Setting up an ethics review: documents imported as drafts, an investigator, a chair and
enough lay and expert members for the UK quorum (7 non-conflicted members present)."""

from __future__ import annotations

import io
from dataclasses import dataclass

from sqlalchemy import select

from portal.accounts.models import User
from portal.consent.models import DocumentVersion
from portal.core.permissions import Role
from portal.extensions import db
from portal.review.models import Submission
from tests.consent.doc_fixtures import write_example
from tests.factories import Account, create_account
from tests.helpers import PortalClient

# A minimal valid PDF is not needed: the portal recognises PDFs by their first bytes.
PROTOCOL_PDF = b"%PDF-1.4\n% protocol for review\n%%EOF\n"


@dataclass
class Review:
    app: object
    investigator: Account
    chair: Account
    members: list[Account]
    version_id: int

    def client(self, account: Account) -> PortalClient:
        client = PortalClient(self.app)
        client.login(account.email, account.password)
        return client

    def submission(self) -> Submission:
        return db.session.scalar(select(Submission).order_by(Submission.id.desc()))


def set_up_review(make_app, url, tmp_path, members: int = 8, **config) -> Review:
    root = tmp_path / "consent_docs"
    write_example(root, "1.0")
    app = make_app(url, CONSENT_DOCS_PATH=str(root), **config)
    assert app.test_cli_runner().invoke(args=["docs", "import"]).exit_code == 0
    investigator = create_account(
        app, Role.INVESTIGATOR, "ada@example.org", full_name="Dr Ada Lovelace"
    )
    chair = create_account(app, Role.PANEL_CHAIR, "chair@example.org", full_name="Prof Cho Chair")
    panel = [
        create_account(
            app, Role.PANEL_MEMBER, f"member{i}@example.org", full_name=f"Member {i:02d}"
        )
        for i in range(members)
    ]
    with app.app_context():
        db.session.get(User, chair.id).panel_membership = "expert"
        for i, member in enumerate(panel):
            db.session.get(User, member.id).panel_membership = "lay" if i % 3 == 0 else "expert"
        db.session.commit()
        version_id = db.session.scalar(select(DocumentVersion.id))
    return Review(app, investigator, chair, panel, version_id)


def protocol_form(review: Review, **overrides) -> dict:
    form = {
        "title": "Diary study of MDMA-assisted therapy",
        "reference": "IRAS 312345",
        "chief_investigator": "Dr Ada Lovelace",
        "sites": "St Elsewhere Hospital\nCardiff Clinic",
        "team_emails": "ada@example.org",
        "summary": "A study of a diary kept during treatment.",
        "version_ids": [str(review.version_id)],
        "protocol_file": (io.BytesIO(PROTOCOL_PDF), "protocol.pdf"),
    }
    form.update(overrides)
    return form


def submit_protocol(review: Review, **overrides) -> int:
    client = review.client(review.investigator)
    response = client.post(
        "/review/protocols/new",
        protocol_form(review, **overrides),
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.text
    with review.app.app_context():
        return review.submission().id


def declare(review: Review, account: Account, submission_id: int, conflict: bool = False):
    client = review.client(account)
    data = {"conflict": "yes" if conflict else "no"}
    if conflict:
        data["details"] = "I co-authored the pilot study."
    response = client.post(f"/review/panel/submissions/{submission_id}/declare", data)
    assert response.status_code == 302, response.text
    return client


def vote(review: Review, account: Account, submission_id: int, choice: str = "for", declared=True):
    client = declare(review, account, submission_id) if declared else review.client(account)
    return client.post(f"/review/panel/submissions/{submission_id}/vote", {"choice": choice})


def quorate_votes(review: Review, submission_id: int, voters: int = 7, choice: str = "for"):
    for member in review.members[:voters]:
        assert vote(review, member, submission_id, choice).status_code == 302
