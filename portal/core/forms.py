"""Helpers shared by views that handle forms."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request


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
