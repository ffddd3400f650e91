"""Configuration checks: a production server refuses to start with an unsafe setting."""

from __future__ import annotations

from flask import Flask

# Values that have been published (README, tests, examples) and so protect nothing.
KNOWN_SECRETS = {"test-secret-key", "dev", "development", "secret", "change-me", "changeme"}
MIN_SECRET_LENGTH = 32


class UnsafeConfiguration(RuntimeError):
    """Raised at start-up in production; the message lists every problem."""


def problems(app: Flask) -> list[str]:
    """Each unsafe setting, in words an operator can act on (empty when all is well)."""
    config = app.config
    if config["ENVIRONMENT"] == "development":
        return []
    found = []
    secret = config.get("SECRET_KEY") or ""
    if config.get("SECRET_KEY_GENERATED") or secret in KNOWN_SECRETS:
        found.append(
            "SECRET_KEY is a default: set PORTAL_SECRET_KEY (the same on every server) to a "
            "random value of at least 32 characters"
        )
    elif len(secret) < MIN_SECRET_LENGTH:
        found.append(f"SECRET_KEY is shorter than {MIN_SECRET_LENGTH} characters")
    if config.get("DATA_ENCRYPTION_KEY_GENERATED"):
        found.append(
            "DATA_ENCRYPTION_KEY was generated on this server: set PORTAL_DATA_ENCRYPTION_KEY "
            "(the same on every server, and kept apart from database backups)"
        )
    if not (config.get("RECORD_SIGNING_KEY") and config.get("RECORD_SIGNING_CERT")):
        found.append(
            "records would be sealed with the self-signed development certificate: set "
            "RECORD_SIGNING_KEY and RECORD_SIGNING_CERT to the institution's PEM files"
        )
    if not config.get("SESSION_COOKIE_SECURE"):
        found.append("session cookies are not Secure: serve over HTTPS with ENVIRONMENT=production")
    if config.get("FAULT_POINT"):
        found.append("FAULT_POINT is set: it crashes the server on purpose (tests only)")
    if not str(config.get("PORTAL_BASE_URL", "")).startswith("https://"):
        found.append("PORTAL_BASE_URL must be the https:// address people use")
    return found


def require_safe(app: Flask) -> None:
    found = problems(app)
    if found:
        raise UnsafeConfiguration(
            "refusing to start in production:\n" + "\n".join(f"- {p}" for p in found)
        )
