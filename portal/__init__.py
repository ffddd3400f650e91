"""Consent & Ethics Portal: the Flask application factory."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: audit verification's workers import portal.core.*
    from flask import Flask  # without wanting Flask, and start in a tenth of the time

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: config -> extensions -> blueprints -> cli."""
    from flask import Flask

    instance_path = os.environ.get("PORTAL_INSTANCE_PATH", str(PROJECT_ROOT / "instance"))
    app = Flask(
        __name__,
        instance_path=instance_path,
        instance_relative_config=True,
        template_folder=str(PROJECT_ROOT / "templates"),
    )
    _load_config(app, test_config)
    _configure_jinja(app)
    from portal.core.forms import RowIdConverter

    app.url_map.converters["int"] = RowIdConverter  # /consent/99999999999999 is a 404, not a 500

    from portal.core import errors, i18n, navigation, permissions, security
    from portal.extensions import babel, csrf, db, limiter, login_manager
    from portal.operations import logs

    db.init_app(app)
    limiter.init_app(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=i18n.select_locale, timezone_selector=i18n.select_timezone)
    login_manager.init_app(app)
    security.init_app(app)
    permissions.init_app(app)
    errors.init_app(app)
    i18n.init_app(app)
    navigation.init_app(app)
    logs.init_app(app)

    from portal.accounts import auth
    from portal.accounts.views import bp as accounts_bp
    from portal.comprehension.views import bp as comprehension_bp
    from portal.consent import journey_views  # noqa: F401 - adds the journey to consent_bp
    from portal.consent.views import bp as consent_bp
    from portal.consent.withdrawal_views import bp as withdrawal_bp
    from portal.core.views import bp as core_bp
    from portal.incidents.views import bp as incidents_bp
    from portal.notifications.views import bp as notifications_bp
    from portal.operations.health import bp as operations_bp
    from portal.oversight.fhir_views import bp as fhir_bp
    from portal.oversight.views import bp as oversight_bp
    from portal.records.views import bp as records_bp
    from portal.review import panel_views  # noqa: F401  (its routes join the review blueprint)
    from portal.review.views import bp as review_bp

    auth.init_app(app)
    for blueprint in (
        core_bp,
        accounts_bp,
        consent_bp,
        comprehension_bp,
        withdrawal_bp,
        records_bp,
        review_bp,
        oversight_bp,
        fhir_bp,
        notifications_bp,
        incidents_bp,
        operations_bp,
    ):
        app.register_blueprint(blueprint)

    if app.config["PROXY_COUNT"]:
        # Behind a TLS-terminating proxy: trust its X-Forwarded-* headers (and only its).
        from werkzeug.middleware.proxy_fix import ProxyFix

        count = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)

    from portal.cli import register_commands

    register_commands(app)
    return app


def _load_config(app: Flask, test_config: dict[str, Any] | None) -> None:
    """Defaults, then instance/config.py, then PORTAL_* variables, then the test's overrides."""
    app.config.from_object("portal.config.DefaultConfig")
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("PORTAL")
    if test_config:
        app.config.update(test_config)
    if not app.config.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = f"sqlite:///{Path(app.instance_path) / 'portal.db'}"
    if not app.config.get("CONSENT_DOCS_PATH"):
        app.config["CONSENT_DOCS_PATH"] = str(PROJECT_ROOT / "consent_docs")
    if not app.config.get("DATA_ENCRYPTION_KEY"):
        from portal.core.crypto import instance_data_key

        app.config["DATA_ENCRYPTION_KEY"] = instance_data_key(Path(app.instance_path))
        app.config["DATA_ENCRYPTION_KEY_GENERATED"] = True  # fine for one machine only
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret_key(Path(app.instance_path))
        app.config["SECRET_KEY_GENERATED"] = True
    served_over_https = app.config["ENVIRONMENT"] != "development"
    if app.config["COOKIES_SECURE"] is not None:  # an explicit choice (`flask check` judges it)
        served_over_https = bool(app.config["COOKIES_SECURE"])
    app.config["SESSION_COOKIE_SECURE"] = served_over_https
    if served_over_https and not app.config["SESSION_COOKIE_NAME"].startswith("__Host-"):
        # The __Host- prefix pins the cookie to this exact host, HTTPS and path /.
        app.config["SESSION_COOKIE_NAME"] = "__Host-" + app.config["SESSION_COOKIE_NAME"]


def _instance_secret_key(instance_path: Path) -> str:
    """Read the generated secret key, creating it (mode 0600) on first start."""
    instance_path.mkdir(parents=True, exist_ok=True)
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return key_file.read_text().strip()


def _configure_jinja(app: Flask) -> None:
    """Project templates first, then the NHS.UK frontend macros from PyPI."""
    from jinja2 import ChainableUndefined, ChoiceLoader, FileSystemLoader, PackageLoader

    from portal.core.jinja_environment import PortalEnvironment

    app.jinja_environment = PortalEnvironment  # type: ignore[misc]
    app.jinja_options = {
        **app.jinja_options,
        "undefined": ChainableUndefined,
        "extensions": ["jinja2.ext.do"],
    }
    app.jinja_loader = ChoiceLoader(  # type: ignore[assignment]
        [FileSystemLoader(app.template_folder), PackageLoader("nhsuk_frontend_jinja")]
    )
