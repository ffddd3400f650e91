"""Consent pages: the patient's home, and the consent documents for staff and the panel."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from flask_login import current_user
from sqlalchemy import select

from portal.consent.document_format import DOCUMENT_LANGUAGES, VERSION_RE, render_markdown
from portal.consent.documents import find_version, previous_approved_version
from portal.consent.elements import KNOWN_ELEMENTS, REQUIRED_ELEMENTS
from portal.consent.journey_models import Consent, ConsentStatus
from portal.consent.models import ConsentDocument, DocumentError
from portal.consent.readability import PLAIN_LANGUAGE_TARGET, score
from portal.consent.redline import compare
from portal.core.db import reads_only
from portal.core.permissions import STAFF_ROLES, Role, roles_required
from portal.extensions import db

bp = Blueprint("consent", __name__, url_prefix="/consent")


@bp.app_template_filter("markdown")
def _markdown_filter(text: str):
    return render_markdown(text)


@bp.route("/")
@roles_required(Role.PATIENT)
@reads_only
def home():
    consents = db.session.scalars(
        select(Consent).where(Consent.patient_id == current_user.id).order_by(Consent.id.desc())
    ).all()
    waiting = [
        c
        for c in consents
        if c.status in (ConsentStatus.OFFERED, ConsentStatus.IN_PROGRESS, ConsentStatus.SIGNED)
    ]
    history = [c for c in consents if c not in waiting]
    # A newer version without a material change: tell them, ask nothing.
    updated = [
        c
        for c in history
        if c.status == ConsentStatus.COMPLETE
        and (active := c.version.document.active_version) is not None
        and active.id != c.version_id
        and not active.material_change
    ]
    return render_template(
        "consent/home.html",
        study_contact=current_user.invited_by,
        waiting=waiting,
        history=history,
        updated=updated,
    )


@bp.route("/documents")
@roles_required(*STAFF_ROLES)
@reads_only
def documents():
    found = db.session.scalars(select(ConsentDocument).order_by(ConsentDocument.slug)).all()
    return render_template(
        "consent/documents.html",
        documents=found,
    )


def _version_or_404(slug: str, version: str):
    if not VERSION_RE.match(version):
        abort(404)
    try:
        return find_version(db.session, slug, version)
    except DocumentError:
        abort(404)


@bp.route("/documents/<slug>/<version>/<language>")
@roles_required(*STAFF_ROLES)
@reads_only
def document_version(slug: str, version: str, language: str):
    found = _version_or_404(slug, version)
    text = found.text_in(language)
    if text is None:
        abort(404)
    readability = {section.key: score(section.body, language) for section in text.sections}
    return render_template(
        "consent/document_version.html",
        version=found,
        text=text,
        readability=readability,
        target=PLAIN_LANGUAGE_TARGET,
        element_labels=KNOWN_ELEMENTS,
        required_elements=REQUIRED_ELEMENTS,
        previous=previous_approved_version(found),
    )


@bp.route("/documents/<slug>/compare")
@roles_required(*STAFF_ROLES)
@reads_only
def redline(slug: str):
    language = request.args.get("language", "en-GB")
    if language not in DOCUMENT_LANGUAGES:
        abort(404)
    old_version = _version_or_404(slug, request.args.get("from", ""))
    new_version = _version_or_404(slug, request.args.get("to", ""))
    old_text, new_text = old_version.text_in(language), new_version.text_in(language)
    if old_text is None or new_text is None:
        abort(404)
    return render_template(
        "consent/redline.html",
        redline=compare(old_text, new_text),
        old_version=old_version,
        new_version=new_version,
        language=language,
        document_languages=DOCUMENT_LANGUAGES,
    )
