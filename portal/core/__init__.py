"""Cross-cutting foundations: database, audit trail, permissions, errors, i18n, security."""
