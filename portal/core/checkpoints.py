"""Signed checkpoints of the audit chain: its head (sequence, hash, time) signed with an Ed25519
key kept outside the database.

Someone able to rewrite the database could rewrite the whole chain and its head consistently;
they cannot sign a checkpoint without the key. Each checkpoint is stored in the database and
can be appended to a witness file kept elsewhere (JSON lines); `audit verify` checks both, so a
truncated tail or a rewritten chain no longer matches a signed checkpoint.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app
from sqlalchemy import BigInteger, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.core import audit
from portal.core.db import Base, UTCDateTime, utcnow


class AuditCheckpoint(Base):
    """A signed statement that the chain had this head at this time. Written once."""

    __tablename__ = "audit_checkpoint"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(Text)  # base64 Ed25519 over the canonical statement


def statement(seq: int, hash_: str, signed_at: str) -> bytes:
    """What is signed: canonical JSON (docs/audit-chain.md) of the head and the time."""
    return audit.canonical_json({"seq": seq, "hash": hash_, "signed_at": signed_at}).encode()


def _key_path() -> Path:
    configured = current_app.config.get("CHECKPOINT_KEY")
    return (
        Path(configured) if configured else Path(current_app.instance_path) / "checkpoint_key.pem"
    )


def private_key() -> Ed25519PrivateKey:
    """The signing key, generated once (mode 0600) unless CHECKPOINT_KEY names one."""
    path = _key_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def public_key() -> Ed25519PublicKey:
    return private_key().public_key()


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b32encode(raw).decode()[:16]


def create(session: Session) -> AuditCheckpoint:
    """Sign the current head; the caller commits."""
    head = session.get(audit.AuditChainHead, 1)
    signed_at = audit.format_timestamp(utcnow())
    key = private_key()
    checkpoint = AuditCheckpoint(
        seq=head.last_seq,
        hash=head.last_hash,
        signed_at=dt.datetime.strptime(signed_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC),
        key_id=key_id(key.public_key()),
        signature=base64.b64encode(
            key.sign(statement(head.last_seq, head.last_hash, signed_at))
        ).decode(),
    )
    session.add(checkpoint)
    session.flush()
    return checkpoint


def as_line(checkpoint: AuditCheckpoint) -> str:
    """The checkpoint as one JSON line for a witness file (or an email to the panel)."""
    return json.dumps(
        {
            "seq": checkpoint.seq,
            "hash": checkpoint.hash,
            "signed_at": audit.format_timestamp(checkpoint.signed_at),
            "key_id": checkpoint.key_id,
            "signature": checkpoint.signature,
        },
        sort_keys=True,
    )


@dataclass(frozen=True)
class CheckpointReport:
    checked: int
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify(session: Session, witness: Path | None = None) -> CheckpointReport:
    """Every checkpoint (stored, and in the witness file) is signed by our key and matches the
    chain as it is now."""
    entries = [
        {
            "seq": c.seq,
            "hash": c.hash,
            "signed_at": audit.format_timestamp(c.signed_at),
            "signature": c.signature,
        }
        for c in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id))
    ]
    if witness is not None and witness.exists():
        for number, line in enumerate(witness.read_text().splitlines(), start=1):
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                return CheckpointReport(0, f"line {number} of the witness file is not a checkpoint")
    key = public_key()
    head = session.get(audit.AuditChainHead, 1)
    for entry in entries:
        try:
            key.verify(
                base64.b64decode(entry["signature"]),
                statement(entry["seq"], entry["hash"], entry["signed_at"]),
            )
        except (InvalidSignature, KeyError, ValueError, TypeError):
            return CheckpointReport(
                0, f"the checkpoint at event {entry.get('seq')} is not signed by this portal's key"
            )
        if head is None or entry["seq"] > head.last_seq:
            return CheckpointReport(
                0,
                f"a checkpoint vouches for event {entry['seq']}, but the chain is shorter "
                "(its end was removed)",
            )
        stored = session.scalar(
            select(audit.AuditEvent.hash).where(audit.AuditEvent.seq == entry["seq"])
        )
        if entry["seq"] > 0 and stored != entry["hash"]:
            return CheckpointReport(
                0,
                f"event {entry['seq']} no longer matches its signed checkpoint "
                "(the chain was rewritten)",
            )
    return CheckpointReport(len(entries))
