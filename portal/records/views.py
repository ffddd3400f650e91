"""Downloading sealed records, and the public page that tells anyone whether a PDF is genuine."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, render_template
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import select

from portal.core import rate_limits
from portal.core.forms import PortalForm
from portal.core.permissions import PANEL_ROLES, Role, public, roles_required
from portal.extensions import db, limiter
from portal.records.models import Record
from portal.records.services import can_download, record_download, verify_file

bp = Blueprint("records", __name__, url_prefix="/records")


class VerifyForm(PortalForm):
    document = FileField(
        _l("The PDF to check"), validators=[FileRequired(_l("Choose a PDF file to check"))]
    )


@bp.route("/<uid>.pdf")
@roles_required(Role.PATIENT, Role.THERAPIST, *PANEL_ROLES)
def download(uid: str):
    record = db.session.scalar(select(Record).where(Record.uid == uid))
    if record is None or not can_download(current_user, record):
        abort(404)  # another person's record does not exist, as far as this user knows
    record_download(db.session, current_user, record)
    db.session.commit()
    return Response(
        record.pdf,
        mimetype="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="consent-record-{record.uid}.pdf"',
            "Cache-Control": "no-store",
        },
    )


@bp.route("/verify", methods=["GET", "POST"])
@limiter.limit(rate_limits.VERIFICATIONS_PER_ADDRESS, methods=["POST"])
@public
def verify():
    form = VerifyForm()
    verdict = None
    if form.validate_on_submit():
        data = form.document.data.read(current_app.config["VERIFY_MAX_BYTES"] + 1)
        if len(data) > current_app.config["VERIFY_MAX_BYTES"]:
            form.document.errors.append(_l("The file must be 10 MB or smaller"))
        else:
            verdict = verify_file(db.session, data)
    status = 400 if form.errors else 200
    return render_template("records/verify.html", form=form, verdict=verdict), status
