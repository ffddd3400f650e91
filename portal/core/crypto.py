"""Encryption at rest for the most sensitive free text (Fernet: AES-128-CBC with HMAC-SHA256).

The key lives outside the database: DATA_ENCRYPTION_KEY in instance/config.py or the
environment, else a key generated once into instance/data_key (mode 0600). Every server of one
installation must share it; losing it loses the encrypted text, so back it up with the
instance folder, apart from database backups.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app
from sqlalchemy import LargeBinary, Text
from sqlalchemy.types import TypeDecorator

PREFIX = "fernet:"


def instance_data_key(instance_path: Path) -> str:
    """Read the generated key, creating it (mode 0600) on first start."""
    instance_path.mkdir(parents=True, exist_ok=True)
    key_file = instance_path / "data_key"
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(Fernet.generate_key().decode())
    return key_file.read_text().strip()


def _fernet() -> Fernet:
    return Fernet(current_app.config["DATA_ENCRYPTION_KEY"])


class EncryptedText(TypeDecorator[str]):
    """Text stored encrypted; reads give the plain text back to the application only."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        return PREFIX + _fernet().encrypt(value.encode("utf-8")).decode("ascii")

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        if not value.startswith(PREFIX):
            raise ValueError("an encrypted column holds unencrypted text")
        try:
            return _fernet().decrypt(value[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise ValueError("encrypted text cannot be read with this DATA_ENCRYPTION_KEY") from exc


class EncryptedBytes(TypeDecorator[bytes]):
    """Binary content (uploaded evidence) stored encrypted, like EncryptedText."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: bytes | None, dialect: Any) -> bytes | None:
        if value is None:
            return None
        return _fernet().encrypt(value)

    def process_result_value(self, value: bytes | None, dialect: Any) -> bytes | None:
        if value is None:
            return None
        try:
            return _fernet().decrypt(bytes(value))
        except InvalidToken as exc:
            raise ValueError("encrypted data cannot be read with this DATA_ENCRYPTION_KEY") from exc
