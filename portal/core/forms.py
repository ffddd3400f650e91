"""Helpers shared by views that handle forms."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import request
from werkzeug.routing import IntegerConverter


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
