"""Locale choice (account, then session, then browser) and template helpers for languages."""

from __future__ import annotations

import datetime as dt

from flask import Flask, current_app, g, has_request_context, request, session
from flask_babel import format_date, format_datetime, get_locale, get_translations
from flask_login import current_user

SESSION_LOCALE_KEY = "locale"
HTML_LANG = {"en_GB": "en-GB", "cy": "cy"}


def supported_locales() -> list[str]:
    return list(current_app.config["LANGUAGES"])


def select_locale() -> str:
    """The signed-in user's language, else the one chosen on this device, else the browser's."""
    if not has_request_context():  # CLI commands and background work
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    if current_user and current_user.is_authenticated and current_user.locale:
        return current_user.locale
    chosen = session.get(SESSION_LOCALE_KEY)
    if chosen in current_app.config["LANGUAGES"]:
        return chosen
    return (
        request.accept_languages.best_match(supported_locales())
        or current_app.config["BABEL_DEFAULT_LOCALE"]
    )


def select_timezone() -> str:
    return current_app.config["BABEL_DEFAULT_TIMEZONE"]


def current_locale_code() -> str:
    locale = get_locale()
    code = str(locale) if locale else current_app.config["BABEL_DEFAULT_LOCALE"]
    return code if code in current_app.config["LANGUAGES"] else "en_GB"


def _template_globals() -> dict[str, object]:
    code = current_locale_code()
    return {
        "current_locale": code,
        "html_lang": HTML_LANG.get(code, "en-GB"),
        "languages": current_app.config["LANGUAGES"],
        "html_lang_of": HTML_LANG,
    }


def local_datetime(moment: dt.datetime | None) -> str:
    """A UTC moment shown in UK time with its zone, in the reader's language."""
    if moment is None:
        return ""
    return format_datetime(moment, "d MMMM y, HH:mm zzz")


def local_date(day: dt.date | None) -> str:
    """A calendar day (already a UK date) in the reader's language."""
    if day is None:
        return ""
    return format_date(day, "d MMMM y")


def _catalogue():
    """The catalogue for the request's language, kept for the request. Flask-Babel finds it
    afresh (domain, locale, cache key) for each of the fifty-odd strings on a page; this keeps
    it while the locale object is the same, so force_locale (PDFs, emails) still switches."""
    if not g:
        return get_translations()
    locale = get_locale()
    kept = g.get("_portal_catalogue")
    if kept is None or kept[0] is not locale:
        kept = g._portal_catalogue = (locale, get_translations())
    return kept[1]


def init_app(app: Flask) -> None:
    """Template helpers, and the templates' gettext on the request's kept catalogue (installed
    over Flask-Babel's, which init_app has already set up)."""
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: _catalogue().ugettext(s),
        ngettext=lambda s, p, n: _catalogue().ungettext(s, p, n),
        pgettext=lambda c, s: _catalogue().upgettext(c, s),
        npgettext=lambda c, s, p, n: _catalogue().unpgettext(c, s, p, n),
        newstyle=True,
    )
    app.context_processor(_template_globals)
    app.add_template_filter(local_datetime)
    app.add_template_filter(local_date)
