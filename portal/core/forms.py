"""Helpers shared by views that handle forms."""

from __future__ import annotations

import datetime as dt
import functools
import re
from urllib.parse import urlsplit

from babel import support
from flask import request
from flask_babel import get_locale
from flask_wtf import FlaskForm
from werkzeug.routing import IntegerConverter
from wtforms.i18n import messages_path


class PortalForm(FlaskForm):
    """Every form of the portal: WTForms' own messages ("Not a valid integer value") in the
    reader's language, from a catalogue loaded once per language and process. (Flask-WTF reads
    it from disk again on every request that builds a form.)"""

    class Meta(FlaskForm.Meta):
        def get_translations(self, form):
            return wtforms_catalogue(str(get_locale() or "en_GB"))


@functools.lru_cache(maxsize=8)
def wtforms_catalogue(locale: str) -> support.Translations:
    return support.Translations.load(messages_path(), [locale], domain="wtforms")


def safe_next_url(candidate: str | None) -> str | None:
    """Return `candidate` only when it is a path on this site (no open redirects)."""
    if not candidate or not candidate.startswith("/") or candidate.startswith("//"):
        return None
    if "\\" in candidate or any(ord(ch) < 32 for ch in candidate):
        return None
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc:
        return None
    return candidate


def client_address() -> str | None:
    return request.remote_addr


MAX_ROW_ID = 2**31 - 1  # the largest id the database columns hold
_ROW_ID = re.compile(r"[0-9]{1,10}")


class RowIdConverter(IntegerConverter):
    """`<int:...>` in routes, limited to ids a row can have (larger ones do not match: 404)."""

    def __init__(self, url_map, *args, **kwargs) -> None:
        kwargs.setdefault("max", MAX_ROW_ID)
        super().__init__(url_map, *args, **kwargs)


def parse_row_id(value: str | None) -> int | None:
    """A submitted id (a select's value), or None when it cannot be one."""
    if not value or not _ROW_ID.fullmatch(value):
        return None
    number = int(value)
    return number if 0 < number <= MAX_ROW_ID else None


def show_error(form, error: Exception, fallback=None) -> None:
    """Put a service's refusal next to the field it names (`error.field`), else on `fallback`
    (by default the form's first field), so the error summary links to it."""
    name = getattr(error, "field", None)
    target = form[name] if name and name in form else fallback
    if target is None:
        target = next(iter(form))
    target.errors = [*target.errors, str(error)]


def date_from_parts(day: str | None, month: str | None, year: str | None) -> dt.date | None:
    """A date typed as day, month and year boxes (the GOV.UK/NHS pattern), or None."""
    try:
        return dt.date(int(year or ""), int(month or ""), int(day or ""))
    except (TypeError, ValueError, OverflowError):
        return None
