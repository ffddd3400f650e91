"""Default settings; secrets and site settings come from instance/config.py or PORTAL_* vars."""

import datetime as dt


class DefaultConfig:
    # "production" turns on Secure cookies; `make run` and the tests set "development".
    ENVIRONMENT = "production"
    SECRET_KEY: str | None = None  # instance/config.py, PORTAL_SECRET_KEY, or generated once
    # Key for text encrypted at rest (teach-back notes, patients' questions); generated once
    # into instance/data_key unless configured. Every server must share the same key.
    DATA_ENCRYPTION_KEY: str | None = None
    DATABASE_URL: str | None = None  # default: SQLite file in the instance folder

    # Invitations (patients by therapists, staff by administrators).
    INVITATION_TTL_HOURS = 72

    # Server-side sessions: idle and absolute limits end the session on the server.
    SESSION_IDLE_MINUTES = 30
    SESSION_ABSOLUTE_HOURS = 12
    PERMANENT_SESSION_LIFETIME = dt.timedelta(hours=12)
    COOKIES_SECURE: bool | None = None  # None: Secure everywhere but development
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_NAME = "portal_session"
    REMEMBER_COOKIE_DURATION = dt.timedelta(seconds=0)

    # Argon2id parameters; None keeps argon2-cffi's RFC 9106 low-memory defaults.
    ARGON2_TIME_COST: int | None = None
    ARGON2_MEMORY_COST: int | None = None
    ARGON2_PARALLELISM: int | None = None
    # Staff, panel and administrator accounts must pass a second factor (TOTP) at sign-in.
    MFA_REQUIRED_FOR_STAFF = True
    MFA_ISSUER = "Consent & Ethics Portal"
    MFA_PENDING_MINUTES = 5
    MFA_MAX_ATTEMPTS = 5
    RECOVERY_CODE_COUNT = 10
    PASSWORD_MIN_LENGTH = 8
    PASSWORD_MAX_LENGTH = 128

    # Rate limits: in memory by default; several servers need a shared store (redis://...).
    RATELIMIT_ENABLED = True
    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_HEADERS_ENABLED = True

    # CSRF tokens live as long as the login session (patients read long documents).
    WTF_CSRF_TIME_LIMIT = None

    # Languages offered everywhere; dates are shown in UK time with the zone named.
    LANGUAGES = {"en_GB": "English", "cy": "Cymraeg"}
    BABEL_DEFAULT_LOCALE = "en_GB"
    BABEL_DEFAULT_TIMEZONE = "Europe/London"
    BABEL_TRANSLATION_DIRECTORIES = "translations"

    MAX_CONTENT_LENGTH = 16 * 1024 * 1024

    # The seal on PDF records: an institution's own PEM key and certificate, or (by default) a
    # key and self-signed certificate generated into instance/ on first use.
    RECORD_SIGNING_KEY: str | None = None
    RECORD_SIGNING_CERT: str | None = None
    RECORD_SIGNER_NAME = "Consent & Ethics Portal"
    VERIFY_MAX_BYTES = 10 * 1024 * 1024

    # Shown wherever a patient may need support (withdrawing, reporting a concern): the
    # study team's 24-hour line. Crisis lines (999, NHS 111, Samaritans) are always shown too.
    STUDY_SUPPORT_PHONE = "0300 000 0001"

    # Boundary incidents: the chair triages within this time (later ones are highlighted);
    # evidence uploads are PDF, PNG or JPEG up to this size.
    TRIAGE_TARGET_HOURS = 48
    EVIDENCE_MAX_BYTES = 10 * 1024 * 1024
    # Ethics review. Quorum: the UK rule (SI 2004/1031 Sch 2) unless a panel sets its own.
    QUORUM_MEMBERS = 7  # non-conflicted members present
    QUORUM_LAY = 1
    QUORUM_EXPERT = 1
    REVIEW_TARGET_DAYS = 60
    PROTOCOL_MAX_BYTES = 10 * 1024 * 1024

    # How many proxies (a TLS-terminating load balancer) sit in front of the app and set
    # X-Forwarded-For/-Proto/-Host; 0 trusts none of these headers.
    PROXY_COUNT = 0
    LOG_LEVEL = "INFO"

    # Signed checkpoints of the audit chain: an Ed25519 key outside the database (default:
    # generated once into instance/checkpoint_key.pem) and an optional witness file elsewhere.
    CHECKPOINT_KEY: str | None = None
    AUDIT_WITNESS_FILE: str | None = None

    # Email for notifications: none by default (messages then wait in the portal's outbox).
    MAIL_SERVER: str | None = None
    MAIL_PORT = 25
    MAIL_USE_STARTTLS = False
    MAIL_USERNAME: str | None = None
    MAIL_PASSWORD: str | None = None
    MAIL_FROM = "Consent & Ethics Portal <portal@localhost>"
    # The address people use to reach the portal, for links in email.
    PORTAL_BASE_URL = "http://localhost:5000"

    # The consent documents' source files (default: consent_docs/ at the top of the project).
    CONSENT_DOCS_PATH: str | None = None
