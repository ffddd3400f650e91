"""Every marked string has a Welsh translation (none fuzzy); pages switch language."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

from portal.core.permissions import Role

ROOT = Path(__file__).parents[2]


def _catalogue(path: Path):
    with path.open("rb") as handle:
        return read_po(handle)


def test_welsh_catalogue_covers_every_marked_string(tmp_path):
    extracted = tmp_path / "messages.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "_l",
            "-k",
            "lazy_gettext",
            "-o",
            str(extracted),
            "--no-location",
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    source_ids = {
        message.id if isinstance(message.id, str) else message.id[0]
        for message in _catalogue(extracted)
        if message.id
    }
    welsh = _catalogue(ROOT / "portal/translations/cy/LC_MESSAGES/messages.po")
    missing = sorted(
        message_id
        for message_id in source_ids
        if (entry := welsh.get(message_id)) is None
        or entry.fuzzy
        or not (all(entry.string) if isinstance(entry.string, tuple) else entry.string)
    )
    assert not missing, (
        "untranslated or fuzzy Welsh strings (run `make translations-update`, then translate): "
        f"{missing}"
    )


def test_pages_are_served_in_welsh_when_chosen(client, users):
    client.post("/language", {"locale": "cy"})
    page = client.get("/account/sign-in").text
    assert 'lang="cy"' in page
    assert "Mewngofnodi" in page
    patient = users[Role.PATIENT]
    client.login(patient.email, patient.password)
    assert "Allgofnodi" in client.get("/consent/").text


def test_every_user_visible_string_is_marked_for_translation():
    from portal.core.i18n_check import check_project

    unmarked = check_project(Path(__file__).parents[2])
    assert not unmarked, "not marked for translation:\n" + "\n".join(map(str, unmarked))


def test_the_check_finds_a_string_left_unmarked(tmp_path):
    from portal.core.i18n_check import check_project

    (tmp_path / "templates").mkdir()
    (tmp_path / "portal" / "views").mkdir(parents=True)
    (tmp_path / "templates" / "page.html").write_text(
        '{% extends "base.html" %}\n'
        "<h1>{{ _('Marked') }}</h1>\n"
        "<p>Left in English</p>\n"
        '<img src="x.png" alt="A picture">\n'
        '{{ button({"text": "Save my work"}) }}\n'
    )
    (tmp_path / "portal" / "views" / "page.py").write_text(
        'flash("Saved for you")\nflash(_("Fine"))\nname = StringField("Your name")\n'
    )
    found = {(item.path.split("/")[-1], item.line, item.text) for item in check_project(tmp_path)}
    assert found == {
        ("page.html", 3, "Left in English"),
        ("page.html", 4, "A picture"),
        ("page.html", 5, "Save my work"),
        ("page.py", 1, "Saved for you"),
        ("page.py", 3, "Your name"),
    }


def test_templates_follow_force_locale_within_a_request(app):
    """The templates keep the request's catalogue, yet a PDF or email rendered in another
    language inside the request (force_locale) is in that language, and the page is not."""
    from flask import render_template_string
    from flask_babel import force_locale

    with app.test_request_context("/", headers={"Accept-Language": "en-GB"}):
        assert render_template_string("{{ _('Sign out') }}") == "Sign out"
        with force_locale("cy"):
            assert render_template_string("{{ _('Sign out') }}") == "Allgofnodi"
        assert render_template_string("{{ _('Sign out') }}") == "Sign out"


def test_wtforms_own_messages_are_in_the_readers_language(app):
    from flask_babel import force_locale
    from werkzeug.datastructures import MultiDict

    from portal.consent.forms import OfferForm

    def error_for(text: str) -> str:
        form = OfferForm(formdata=MultiDict({"document_id": text}), meta={"csrf": False})
        assert not form.validate()
        return form.document_id.errors[0]

    with app.test_request_context("/", headers={"Accept-Language": "en-GB"}):
        assert error_for("abc") == "Not a valid integer value."
        with force_locale("cy"):
            assert error_for("abc") == "Gwerth integer annilys"
