"""The portal's seal: a PAdES signature (pyHanko) by the portal's signing certificate.

The key and a self-signed certificate (key usage: digital signature and non-repudiation) are
generated into instance/ on first use, unless RECORD_SIGNING_KEY and RECORD_SIGNING_CERT name an
institution's own PEM files.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import functools
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from flask import current_app
from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

SIGNATURE_FIELD = "PortalSeal"
_GENERATION_LOCK = threading.Lock()


def signing_files() -> tuple[Path, Path]:
    config = current_app.config
    if config.get("RECORD_SIGNING_KEY") and config.get("RECORD_SIGNING_CERT"):
        return Path(config["RECORD_SIGNING_KEY"]), Path(config["RECORD_SIGNING_CERT"])
    instance = Path(current_app.instance_path)
    key_path, cert_path = instance / "signing_key.pem", instance / "signing_cert.pem"
    with _GENERATION_LOCK:  # two first requests at once must not write two different pairs
        if not key_path.exists() or not cert_path.exists():
            _generate_identity(key_path, cert_path, config["RECORD_SIGNER_NAME"])
    return key_path, cert_path


def _generate_identity(key_path: Path, cert_path: Path, name: str) -> None:
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * 10))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def load_signer() -> signers.SimpleSigner:
    """The portal's key and certificate, ready to sign; ValueError when they cannot be read
    (OSError when they are not there)."""
    key_path, cert_path = signing_files()
    return _signer(
        str(key_path), str(cert_path), key_path.stat().st_mtime_ns, cert_path.stat().st_mtime_ns
    )


@functools.lru_cache(maxsize=4)
def _signer(key_path: str, cert_path: str, _key_mtime: int, _cert_mtime: int):
    """Loaded once per process and file version: loading checks the RSA key's consistency,
    about 130 ms, which every seal (and every readiness check) used to pay. Replacing either
    file (a rotated key) changes its modification time and so loads it afresh."""
    signer = signers.SimpleSigner.load(key_path, cert_path)
    if signer is None:
        raise ValueError("the signing key or certificate cannot be read")
    return signer


def uses_generated_identity() -> bool:
    """True when the seal is the self-signed development identity made on first use."""
    config = current_app.config
    return not (config.get("RECORD_SIGNING_KEY") and config.get("RECORD_SIGNING_CERT"))


def seal(pdf: bytes, reason: str = "Consent record sealed by the Consent & Ethics Portal") -> bytes:
    """Sign the PDF (PAdES B-B, SHA-256) as the portal."""
    signer = load_signer()
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    metadata = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason,
    )
    output = _run(lambda: signers.async_sign_pdf(writer, metadata, signer=signer))
    return output.getvalue()


def _run(make_coroutine):
    """Run pyHanko's async API from sync code, also when this thread already has an event loop
    (pyHanko's own sync wrappers call asyncio.run, which fails inside a running loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coroutine())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result()


@dataclass(frozen=True)
class SealCheck:
    """Whether bytes are a PDF that this portal's seal covers entirely and unaltered."""

    is_pdf: bool
    sealed_by_portal: bool
    problem: str | None = None


def check_seal(data: bytes) -> SealCheck:
    if not data.startswith(b"%PDF-"):
        return SealCheck(False, False, "not a PDF")
    _key_path, cert_path = signing_files()
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        signatures = reader.embedded_signatures
    except Exception:
        return SealCheck(False, False, "the PDF cannot be read")
    if not signatures:
        return SealCheck(True, False, "the PDF carries no signature")
    try:
        context = ValidationContext(trust_roots=[load_cert_from_pemder(str(cert_path))])
        status = _run(lambda: async_validate_pdf_signature(signatures[-1], context))
    except Exception:
        return SealCheck(True, False, "the signature cannot be checked")
    if not (status.intact and status.valid and status.trusted):
        return SealCheck(True, False, "the signature does not match this portal's seal")
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        return SealCheck(True, False, "the PDF was changed after it was sealed")
    return SealCheck(True, True)
