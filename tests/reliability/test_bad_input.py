"""Bad input of any kind: Hypothesis throws arbitrary forms at every state-changing route,
mutated consent documents at the importer, and random or truncated files at the verifier.
Never a 5xx, never a traceback; always a clear answer."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from portal.consent.document_format import DocumentInvalid, read_document_file
from portal.core.permissions import Role, access_rule_for
from portal.extensions import db
from portal.records.services import verify_file
from tests.consent.doc_fixtures import example_source
from tests.consent.journey_helpers import complete, set_up_journey
from tests.factories import DEFAULT_PASSWORD
from tests.helpers import PortalClient

FIXTURE_CHECKS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

# Field names the portal's forms use, and some they do not.
FIELD_NAMES = [
    "scope", "item", "data_option", "reason", "password", "typed_name", "method", "signature",
    "attest", "choice", "visit", "direction", "question", "section", "therapist", "category",
    "day", "month", "year", "session_kind", "what_happened", "others_involved", "feels_safe",
    "anonymous", "severity", "hold", "note", "member_id", "text", "recording_reference",
    "response", "outcome", "reasons", "channel", "attested", "discussed", "identity_checked",
    "witnessed_typed", "document_id", "email", "full_name", "role", "locale", "next", "code",
    "confirm", "current", "new", "item_future-contact", "change", "unexpected",
]  # fmt: skip
VALUES = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1000, max_size=5000),
    st.just("\x00"),
    st.sampled_from(
        ["y", "yes", "no", "study", "treatment", "optional_item", "0", "-1", "²", "9" * 40]
    ),
    st.integers().map(str),
)
FORMS = st.dictionaries(
    st.sampled_from(FIELD_NAMES), st.lists(VALUES, min_size=1, max_size=3), max_size=8
)


@pytest.fixture(scope="module")
def site(tmp_path_factory, sqlite_template):
    """A completed consent and a concern, so that routes naming objects find real ones."""
    import shutil

    from portal import create_app
    from tests.conftest import TEST_CONFIG

    root = tmp_path_factory.mktemp("fuzz")
    shutil.copyfile(sqlite_template, root / "portal.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PORTAL_INSTANCE_PATH", str(root / "instance"))

        def make_app(url, **overrides):
            return create_app({**TEST_CONFIG, "DATABASE_URL": url, **overrides})

        journey = complete(set_up_journey(make_app, f"sqlite:///{root / 'portal.db'}", root))
        yield journey


def _post_routes(app) -> list[tuple[str, str, Role]]:
    routes = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if "POST" not in rule.methods or rule.endpoint in ("accounts.logout",):
                continue
            values = {arg: 1 for arg in rule.arguments}
            if "token" in rule.arguments:
                values["token"] = "not-a-token"
            url = app.url_map.bind("localhost").build(rule.endpoint, values)
            rule_of = access_rule_for(rule.endpoint)
            role = (
                Role.PATIENT
                if rule_of.public or Role.PATIENT in rule_of.roles
                else sorted(rule_of.roles)[0]
            )
            routes.append((rule.endpoint, url, role))
    return sorted(routes)


def _client(site, role: Role) -> PortalClient:
    client = PortalClient(site.app)
    if role == Role.PATIENT:
        client.login(site.patient.email, site.patient.password)
    elif role == Role.THERAPIST:
        client.login(site.therapist.email, site.therapist.password)
    else:
        from tests.factories import create_account

        email = f"fuzz-{role.value}@example.org"
        with site.app.app_context():
            from portal.accounts.models import User

            exists = User.by_email(db.session, email) is not None
        if not exists:
            create_account(site.app, role, email)
        client.login(email, DEFAULT_PASSWORD)
    return client


def test_every_form_survives_arbitrary_input(site):
    failures = []
    for endpoint, url, role in _post_routes(site.app):
        client = _client(site, role)
        _fuzz(client, url, client.csrf_token(), failures, endpoint)
    assert not failures, failures[:3]


def _fuzz(client: PortalClient, url: str, token: str, failures: list, endpoint: str) -> None:
    @settings(max_examples=12, deadline=None, suppress_health_check=FIXTURE_CHECKS, database=None)
    @given(form=FORMS)
    def post_anything(form):
        data = [(key, value) for key, values in form.items() for value in values]
        data.append(("csrf_token", token))
        status = client.http.post(url, data=MultiDict(data)).status_code
        if status >= 500:
            failures.append((endpoint, url, form, status))

    post_anything()


VALID = example_source()


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURE_CHECKS, database=None)
@given(
    cut=st.integers(min_value=0, max_value=len(VALID)),
    length=st.integers(min_value=0, max_value=200),
    insert=st.text(max_size=40),
)
def test_mutated_consent_documents_give_a_clear_error(tmp_path_factory, cut, length, insert):
    root = tmp_path_factory.mktemp("docs")
    folder = root / "diary-study"
    folder.mkdir()
    path = folder / "v1.0.en-GB.md"
    path.write_text(VALID[:cut] + insert + VALID[cut + length :], encoding="utf-8")
    try:
        read_document_file(path, root)
    except DocumentInvalid as exc:
        assert exc.problems and all(str(problem) for problem in exc.problems)


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURE_CHECKS, database=None)
@given(data=st.binary(max_size=4096))
def test_random_bytes_are_never_a_genuine_record(site, data):
    with site.app.app_context():
        assert verify_file(db.session, data).outcome != "genuine"


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURE_CHECKS, database=None)
@given(
    fraction=st.floats(min_value=0.0, max_value=0.999), flip=st.integers(min_value=0, max_value=255)
)
def test_truncated_or_altered_records_are_never_genuine(site, fraction, flip):
    from sqlalchemy import select

    from portal.records.models import Record

    with site.app.app_context():
        pdf = db.session.scalars(select(Record.pdf)).first()
        cut = int(len(pdf) * fraction)
        assert verify_file(db.session, pdf[:cut]).outcome != "genuine"
        position = cut % len(pdf)
        altered = pdf[:position] + bytes([pdf[position] ^ (flip or 1)]) + pdf[position + 1 :]
        assert verify_file(db.session, altered).outcome != "genuine"


def test_the_public_verifier_answers_every_bad_file_clearly(site):
    client = PortalClient(site.app)
    for content in (b"", b"%PDF-1.7\n", b"\x00" * 100, io.BytesIO(b"not a pdf").read()):
        response = client.post(
            "/records/verify",
            {"document": (io.BytesIO(content), "record.pdf")},
            content_type="multipart/form-data",
        )
        assert response.status_code in (200, 400)
        assert "Genuine and unaltered" not in response.text


def test_a_nul_character_is_refused_clearly_on_every_database(make_app, database_url, tmp_path):
    journey = set_up_journey(make_app, database_url, tmp_path)
    patient = journey.patient_client()
    response = patient.post(
        f"/consent/{journey.consent_id}/ask", {"question": "Is this\x00safe?", "section": ""}
    )
    assert response.status_code == 400
    assert "hidden control character (NUL)" in response.text
    with journey.app.app_context():
        from portal.consent.journey_models import PatientQuestion

        assert db.session.query(PatientQuestion).count() == 0
