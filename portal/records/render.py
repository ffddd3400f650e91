"""The consent record as a PDF/A-3b document (WeasyPrint), with its data attached as JSON."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import render_template
from flask_babel import force_locale
from weasyprint import HTML, Attachment
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher

from portal.comprehension.services import question_states
from portal.consent.document_format import DOCUMENT_LANGUAGES
from portal.consent.journey_models import Consent, Signature, Withdrawal
from portal.core.audit import format_timestamp

ATTACHMENT_NAME = "consent-record.json"


_fonts = threading.local()


def _font_config() -> FontConfiguration:
    """One font configuration per thread (Pango's font maps are not shared between threads):
    a new one per render, WeasyPrint's default, leaves about 0.7 MB of native memory behind
    each time (measured by bench/memory.py)."""
    if not hasattr(_fonts, "config"):
        _fonts.config = FontConfiguration()
    return _fonts.config


def restricted_fetcher() -> URLFetcher:
    """Only inline data may be loaded: a document can never make the server fetch a URL."""
    return URLFetcher(allowed_protocols={"data"}, allow_redirects=False, timeout=1)


def record_data(
    consent: Consent, uid: str, created_at, session, signatures: Sequence[Signature] | None = None
) -> dict[str, Any]:
    """The machine-readable content of the record (also embedded in the PDF).

    signatures: the consent's, unless the record is prepared ahead of one still to be stored.
    """
    signatures = consent.signatures if signatures is None else signatures
    states = question_states(session, consent)
    items = {item.key: item for item in consent.text.optional_consents}
    return {
        "record_id": uid,
        "created_at": format_timestamp(created_at),
        "kind": "consent",
        "document": consent.version.document.slug,
        "version": consent.version.version,
        "language": consent.text.language,
        "content_hash": consent.content_hash,
        "patient": {"id": consent.patient_id, "name": consent.patient.full_name},
        "answers": [
            {
                "question": s.question.key,
                "prompt": s.question.prompt,
                "answer": s.question.answer,
                "answer_text": next(
                    c["text"] for c in s.question.choices if c["id"] == s.question.answer
                ),
            }
            for s in states
            if s.passed
        ],
        "choices": [
            {"item": key, "statement": items[key].statement, "agreed": agreed}
            for key, agreed in consent.choice_map.items()
        ],
        "signatures": [
            {
                "role": s.role,
                "printed_name": s.printed_name,
                "meaning": s.meaning,
                "signed_at": format_timestamp(s.signed_at),
                "method": s.method,
                "binding_hash": s.binding_hash,
            }
            for s in signatures
        ],
        "replaces_consent": consent.replaces_id,
    }


def render_consent_pdf(consent: Consent, data: dict[str, Any]) -> bytes:
    """Render in the patient's language, fonts embedded, nothing fetched from outside."""
    return consent_pdf_source(consent, data).render()


def consent_pdf_source(
    consent: Consent, data: dict[str, Any], signatures: Sequence[Signature] | None = None
) -> PdfSource:
    """What the consent record's PDF is made from (see record_data for `signatures`)."""
    signatures = consent.signatures if signatures is None else signatures
    images = {
        s.id: "data:image/png;base64," + base64.b64encode(s.image_png).decode()
        for s in signatures
        if s.image_png
    }
    return _source(
        "pdf/consent_record.html",
        consent,
        data,
        "The consent record's data (JSON)",
        images=images,
        signatures=signatures,
    )


def withdrawal_data(
    withdrawal: Withdrawal, uid: str, created_at, closed: list[int]
) -> dict[str, Any]:
    """The machine-readable content of a withdrawal receipt (also embedded in the PDF).

    The patient's optional reason is left out: it stays encrypted in the portal, while a
    receipt is a document people print and pass on.
    """
    consent = withdrawal.consent
    item, option = withdrawal.item, withdrawal.data_option
    return {
        "record_id": uid,
        "created_at": format_timestamp(created_at),
        "kind": "withdrawal",
        "document": consent.version.document.slug,
        "version": consent.version.version,
        "language": consent.text.language,
        "content_hash": consent.content_hash,
        "patient": {"id": consent.patient_id, "name": consent.patient.full_name},
        "consent_id": consent.id,
        "consents_closed": closed,
        "withdrawal": {
            "id": withdrawal.id,
            "scope": withdrawal.scope,
            "optional_item": {"item": item.key, "statement": item.statement} if item else None,
            "data_option": (
                {"option": option.key, "label": option.label, "description": option.description}
                if option
                else None
            ),
            "channel": withdrawal.channel,
            "communicated_on": withdrawal.communicated_on.isoformat(),
            "recorded_at": format_timestamp(withdrawal.recorded_at),
            "recorded_by": {
                "id": withdrawal.recorded_by_id,
                "name": withdrawal.recorded_by.full_name,
                "role": withdrawal.recorded_by.role,
            },
            "attestation": withdrawal.attestation,
        },
    }


def render_withdrawal_pdf(withdrawal: Withdrawal, data: dict[str, Any]) -> bytes:
    return _source(
        "pdf/withdrawal_receipt.html",
        withdrawal.consent,
        data,
        "The withdrawal receipt's data (JSON)",
        withdrawal=withdrawal,
    ).render()


def _source(
    template: str, consent: Consent, data: dict[str, Any], description: str, **context: Any
) -> PdfSource:
    """In the consent's language."""
    locale = DOCUMENT_LANGUAGES.get(consent.text.language, "en_GB")
    return pdf_source(template, locale, data, description, consent=consent, **context)


@dataclass(frozen=True)
class PdfSource:
    """Everything a PDF is rendered from. Rendering is the slow part (WeasyPrint), so a PDF
    prepared outside a transaction may be used in it when the source made there is equal."""

    html: str
    attachment_json: str
    description: str
    attachment_name: str

    def render(self) -> bytes:
        """A PDF/A-3b with the data attached as JSON, nothing fetched."""
        attachment = Attachment(
            string=self.attachment_json,
            name=self.attachment_name,
            description=self.description,
            relationship="Data",
        )
        return HTML(string=self.html, url_fetcher=restricted_fetcher()).write_pdf(
            pdf_variant="pdf/a-3b",
            attachments=[attachment],
            uncompressed_pdf=False,
            font_config=_font_config(),
        )


def pdf_source(
    template: str,
    locale: str,
    data: dict[str, Any],
    description: str,
    attachment_name: str = ATTACHMENT_NAME,
    **context: Any,
) -> PdfSource:
    """The HTML of `template` in `locale`, and `data` as the JSON to attach."""
    with force_locale(locale):
        html = render_template(template, data=data, **context)
    return PdfSource(
        html=html,
        attachment_json=json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True),
        description=description,
        attachment_name=attachment_name,
    )
