"""Argon2id password hashing (argon2-cffi) with the parameters from the configuration."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

_HASHER_KEY = "portal.password_hasher"
# Verifying against this when the account does not exist keeps timing the same either way.
_DUMMY_PASSWORD = "not-a-real-password"  # noqa: S105


def _hasher() -> PasswordHasher:
    hasher = current_app.extensions.get(_HASHER_KEY)
    if hasher is None:
        config = current_app.config
        overrides = {
            name: config[key]
            for name, key in (
                ("time_cost", "ARGON2_TIME_COST"),
                ("memory_cost", "ARGON2_MEMORY_COST"),
                ("parallelism", "ARGON2_PARALLELISM"),
            )
            if config.get(key) is not None
        }
        hasher = PasswordHasher(**overrides)
        current_app.extensions[_HASHER_KEY] = hasher
    return hasher


@functools.cache
def _common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords, from the zxcvbn package's frequency lists."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def is_common(password: str) -> bool:
    return password.lower() in _common_passwords()


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches; always does the full amount of work."""
    hasher = _hasher()
    target = password_hash or _dummy_hash()
    try:
        matched = hasher.verify(target, password)
    except (VerificationError, InvalidHashError):
        return False
    return matched and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)


def _dummy_hash() -> str:
    key = _HASHER_KEY + ".dummy"
    if key not in current_app.extensions:
        current_app.extensions[key] = _hasher().hash(_DUMMY_PASSWORD)
    return current_app.extensions[key]
