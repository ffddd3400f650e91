"""Numbered pages of a long table (a therapist's consents, their patients): the page a link asks
for, and whether the table has it. A page that is not there answers 404, as a missing row does."""

from __future__ import annotations

import math
import re

_PAGE_NUMBER = re.compile(r"[1-9][0-9]{0,8}")


class NoSuchPage(LookupError):
    """A page number that is not one (`two`, `0`, `²`), or a page past a table's last."""


def requested_page(value: str | None) -> int:
    """The `?page=` a link asks for: 1 when it names none; NoSuchPage for anything but a page
    number (Unicode digits and thousands of digits included, which int() would accept)."""
    if value is None:
        return 1
    if not _PAGE_NUMBER.fullmatch(value):
        raise NoSuchPage(value)
    return int(value)


def page_count(page: int, total: int, per_page: int) -> int:
    """How many pages `total` rows fill (an empty table still has its first page); NoSuchPage
    when `page` is not one of them."""
    pages = max(1, math.ceil(total / per_page))
    if not 1 <= page <= pages:
        raise NoSuchPage(page)
    return pages
