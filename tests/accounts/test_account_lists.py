"""The lists of accounts. The therapist's patient list: only their own patients, A to Z a page at
a time, a search by name or email address that narrows both patients and invitations, and
invitations not taken up (accepted ones are the patients themselves). The administrator's list
of accounts: staff by default, any role or everyone on request, a page at a time."""

from __future__ import annotations

import datetime as dt

import pytest

from portal.accounts.account_lists import account_list, patient_list
from portal.accounts.models import Invitation, User
from portal.core.db import utcnow
from portal.core.paging import NoSuchPage
from portal.core.permissions import Role
from portal.extensions import db
from tests.factories import create_account
from tests.helpers import PortalClient


def add_patients(app, therapist_id: int, *names: str) -> None:
    for name in names:
        email = name.lower().replace(" ", ".") + "@example.org"
        patient = create_account(app, Role.PATIENT, email=email, full_name=name)
        with app.app_context():
            db.session.get(User, patient.id).invited_by_id = therapist_id
            db.session.commit()


def add_invitation(app, therapist_id: int, name: str, expires_in: dt.timedelta, **ended) -> None:
    """An invitation row as the service leaves it (`accepted_at=` or `revoked_at=` to end it)."""
    with app.app_context():
        now = utcnow()
        db.session.add(
            Invitation(
                token_hash=name.encode().hex().ljust(64, "0")[:64],
                email=name.lower().replace(" ", ".") + "@example.org",
                full_name=name,
                role=Role.PATIENT,
                invited_by_id=therapist_id,
                created_at=now + expires_in - dt.timedelta(hours=72),
                expires_at=now + expires_in,
                **ended,
            )
        )
        db.session.commit()


@pytest.fixture
def therapist(app, users):
    client = PortalClient(app)
    account = users[Role.THERAPIST]
    client.login(account.email, account.password)
    return account, client


def test_a_therapist_sees_only_their_own_patients_a_to_z(app, users, therapist):
    account, client = therapist
    add_patients(app, account.id, "Carys Morgan", "aled Evans", "Bryn Jones")
    other = create_account(app, Role.THERAPIST, email="other.therapist@example.org")
    add_patients(app, other.id, "Someone Else")
    page = client.get("/account/patients")
    assert page.status_code == 200
    text = page.text
    assert "3 patients" in text
    assert "Someone Else" not in text
    with app.app_context():
        listed = patient_list(db.session, account.id)
    assert [patient.full_name for patient in listed.patients.accounts] == [
        "aled Evans",  # A to Z whatever the case
        "Bryn Jones",
        "Carys Morgan",
    ]
    assert (listed.patients.page, listed.patients.pages, listed.patients.total) == (1, 1, 3)


def test_patients_come_a_page_at_a_time(app, therapist, monkeypatch):
    monkeypatch.setattr("portal.accounts.account_lists.ACCOUNTS_PER_PAGE", 2)
    account, client = therapist
    add_patients(app, account.id, "Alys Hughes", "Bryn Jones", "Carys Morgan")
    first = client.get("/account/patients").text
    assert "3 patients, A to Z by name: page 1 of 2" in first
    assert "Alys Hughes" in first and "Bryn Jones" in first and "Carys Morgan" not in first
    assert 'href="/account/patients?page=2#patients"' in first
    assert "Previous patients" not in first
    second = client.get("/account/patients?page=2").text
    assert "page 2 of 2" in second
    assert "Carys Morgan" in second and "Alys Hughes" not in second
    assert 'href="/account/patients?page=1#patients"' in second
    assert "Next patients" not in second
    for page in ("3", "0", "-1", "two", "", "\u00b2", "1" * 5000):
        assert client.get(f"/account/patients?page={page}").status_code == 404, page
    with app.app_context(), pytest.raises(NoSuchPage):
        patient_list(db.session, account.id, page=3)


def test_a_search_finds_names_and_email_addresses_whatever_their_case(app, therapist, monkeypatch):
    monkeypatch.setattr("portal.accounts.account_lists.ACCOUNTS_PER_PAGE", 1)
    account, client = therapist
    add_patients(app, account.id, "Bryn Jones", "Gwen JONES", "Carys Morgan")
    add_invitation(app, account.id, "Dylan Jones", dt.timedelta(hours=24))
    add_invitation(app, account.id, "Eleri Price", dt.timedelta(hours=24))

    first = client.get("/account/patients?search=+jones+").text  # spaces around are dropped
    assert "2 patients match “jones”, A to Z by name: page 1 of 2" in first
    assert "Bryn Jones" in first and "Carys Morgan" not in first
    assert 'href="/account/patients?page=2&search=jones#patients"' in first
    assert "Dylan Jones" in first and "Eleri Price" not in first  # invitations narrowed too
    assert 'value="jones"' in first  # the box keeps what was typed
    second = client.get("/account/patients?search=jones&page=2").text
    assert "Gwen JONES" in second and "Bryn Jones" not in second

    by_email = client.get("/account/patients?search=CARYS.MORGAN@").text
    assert "1 patient matches “CARYS.MORGAN@”" in by_email and "Carys Morgan" in by_email
    nothing = client.get("/account/patients?search=zzz").text
    assert "None of your patients has a name or email address containing “zzz”." in nothing
    assert "No invitations match “zzz”." in nothing
    assert client.get("/account/patients?search=jones&page=3").status_code == 404


def test_names_sort_and_match_whatever_their_accents(app, therapist):
    """Welsh names among them: SQLite's own lower() and LIKE fold ASCII letters only, so the
    lists sort and search a folded copy of each name, alike on both databases."""
    account, client = therapist
    for email, name in (
        ("sian@example.org", "Siân Ŵyn"),
        ("zac@example.org", "Zac Price"),
        ("elise@example.org", "Élise Roberts"),
        ("dafydd@example.org", "dafydd Rhys"),
        ("lukasz@example.org", "Łukasz Nowak"),  # ł has no accent to take off: mapped
    ):
        patient = create_account(app, Role.PATIENT, email=email, full_name=name)
        with app.app_context():
            db.session.get(User, patient.id).invited_by_id = account.id
            db.session.commit()
    add_invitation(app, account.id, "Ffion Hâf", dt.timedelta(hours=24))
    with app.app_context():
        listed = patient_list(db.session, account.id)
        assert [patient.full_name for patient in listed.patients.accounts] == [
            "dafydd Rhys",
            "Élise Roberts",  # among the Es, not after z
            "Łukasz Nowak",
            "Siân Ŵyn",
            "Zac Price",
        ]
        for search in ("SIÂN", "sian", "ŵyn", "WYN"):
            found = patient_list(db.session, account.id, search=search).patients.accounts
            assert [patient.full_name for patient in found] == ["Siân Ŵyn"], search
        found = account_list(db.session, (Role.PATIENT,), search="ELISE").accounts
        assert [patient.full_name for patient in found] == ["Élise Roberts"]
        found = account_list(db.session, None, search="lukasz").accounts
        assert [patient.full_name for patient in found] == ["Łukasz Nowak"]
    page = client.get("/account/patients?search=HAF").text
    assert "Ffion Hâf" in page and "None of your patients" in page
    page = client.get("/account/patients?search=SI%C3%82N").text
    assert "1 patient matches “SIÂN”" in page and "Siân Ŵyn" in page and "Zac Price" not in page


def test_wildcards_in_a_search_are_matched_as_themselves(app, therapist):
    account, client = therapist
    add_patients(app, account.id, "Bryn Jones", "Carys 100% Morgan")
    assert "1 patient matches" in client.get("/account/patients?search=%25").text
    assert "None of your patients" in client.get("/account/patients?search=_ones").text


def test_a_search_too_long_is_refused_plainly_and_the_list_still_shown(app, therapist):
    account, client = therapist
    add_patients(app, account.id, "Bryn Jones")
    response = client.get("/account/patients?search=" + "a" * 255)
    assert response.status_code == 400
    assert "Your search must be 254 characters or fewer" in response.text
    assert 'href="#search"' in response.text  # the error summary links to the box
    assert "Bryn Jones" in response.text


def test_invitations_not_taken_up_are_listed_until_thirty_days_after_they_expire(app, therapist):
    account, client = therapist
    add_invitation(app, account.id, "Waiting Person", dt.timedelta(hours=24))
    add_invitation(app, account.id, "Recently Expired", -dt.timedelta(days=29))
    add_invitation(app, account.id, "Long Expired", -dt.timedelta(days=31))
    add_invitation(app, account.id, "Withdrawn Person", dt.timedelta(hours=24), revoked_at=utcnow())
    add_invitation(app, account.id, "Accepted Person", dt.timedelta(hours=24), accepted_at=utcnow())
    other = create_account(app, Role.THERAPIST, email="other.therapist@example.org")
    add_invitation(app, other.id, "Not Theirs", dt.timedelta(hours=24))
    text = client.get("/account/patients").text
    for shown in ("Waiting Person", "Recently Expired", "Withdrawn Person"):
        assert shown in text, shown
    for hidden in ("Long Expired", "Accepted Person", "Not Theirs"):
        assert hidden not in text, hidden
    assert text.index("Waiting Person") < text.index("Recently Expired")  # newest first
    assert "You have no patients yet." in text


def test_only_the_most_recent_invitations_are_listed_with_a_way_to_find_the_others(
    app, therapist, monkeypatch
):
    monkeypatch.setattr("portal.accounts.account_lists.INVITATIONS_SHOWN", 2)
    account, client = therapist
    for hours, name in ((1, "Oldest Invite"), (2, "Middle Invite"), (3, "Newest Invite")):
        add_invitation(app, account.id, name, dt.timedelta(hours=hours))
    text = client.get("/account/patients").text
    assert "Newest Invite" in text and "Middle Invite" in text and "Oldest Invite" not in text
    assert "Only the 2 most recent are listed." in text
    assert "Oldest Invite" in client.get("/account/patients?search=oldest").text


def test_the_list_is_the_therapists_alone(app, users, therapist):
    account, _client = therapist
    add_patients(app, account.id, "Bryn Jones")
    add_invitation(app, account.id, "Dylan Jones", dt.timedelta(hours=24))
    other = create_account(app, Role.THERAPIST, email="other.therapist@example.org")
    other_client = PortalClient(app)
    other_client.login(other.email, other.password)
    searched = other_client.get("/account/patients?search=jones").text
    assert "Bryn Jones" not in searched and "Dylan Jones" not in searched
    assert "None of your patients has a name or email address containing “jones”." in searched
    for role in (Role.PATIENT, Role.PANEL_MEMBER, Role.ADMINISTRATOR):
        client = PortalClient(app)
        client.login(users[role].email, users[role].password)
        assert client.get("/account/patients").status_code == 403, role


def test_an_expired_invitation_is_not_listed_once_that_person_has_an_account(app, therapist):
    account, client = therapist
    add_invitation(app, account.id, "Bryn Jones", -dt.timedelta(days=2))  # expired, not used
    assert "Bryn Jones" in client.get("/account/patients").text
    add_patients(app, account.id, "Bryn Jones")  # a later invitation was accepted
    text = client.get("/account/patients").text
    assert "Bryn Jones" in text  # among the patients
    assert "No invitations are waiting." in text and "Expired" not in text


@pytest.fixture
def administrator(app, users):
    client = PortalClient(app)
    account = users[Role.ADMINISTRATOR]
    client.login(account.email, account.password)
    return client


def test_the_administrator_sees_staff_by_default_and_patients_on_request(app, users, administrator):
    add_patients(app, users[Role.THERAPIST].id, "Bryn Jones")
    staff = administrator.get("/account/staff")
    assert staff.status_code == 200
    assert users[Role.THERAPIST].email in staff.text and "Bryn Jones" not in staff.text
    assert f"{len(Role) - 1} accounts" in staff.text  # one per staff role
    patients = administrator.get("/account/staff?show=patient").text
    assert "Bryn Jones" in patients and users[Role.THERAPIST].email not in patients
    assert ">2 accounts</caption>" in patients  # the users fixture's patient and Bryn
    everyone = administrator.get("/account/staff?show=everyone&search=JONES").text
    assert ">1 account</caption>" in everyone and "Bryn Jones" in everyone
    assert 'href="/account/staff"' in everyone  # back to the default list


def test_the_administrators_list_comes_a_page_at_a_time_keeping_the_filter(
    app, users, administrator, monkeypatch
):
    monkeypatch.setattr("portal.accounts.account_lists.ACCOUNTS_PER_PAGE", 2)
    add_patients(app, users[Role.THERAPIST].id, "Alys Hughes", "Bryn Jones")
    first = administrator.get("/account/staff?show=patient").text
    assert "3 accounts, by role and then by name: page 1 of 2" in first
    assert 'href="/account/staff?page=2&show=patient#accounts"' in first
    second = administrator.get("/account/staff?show=patient&page=2").text
    assert "Test Patient" in second and "Alys Hughes" not in second
    assert administrator.get("/account/staff?show=patient&page=3").status_code == 404


def test_a_filter_not_on_the_list_is_refused_plainly(app, users, administrator):
    for query in ("show=nobody", "show=", "search=" + "x" * 255):
        response = administrator.get(f"/account/staff?{query}")
        assert response.status_code == 400, query
        assert "There is a problem" in response.text
        assert users[Role.THERAPIST].email in response.text, "staff are listed all the same"
    assert "Choose whose accounts to show from the list" in (
        administrator.get("/account/staff?show=nobody").text
    )
