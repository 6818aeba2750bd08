"""Public keys reported compromised: blocked, by the SHA-256 of their SubjectPublicKeyInfo,
for every later request."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from core import queries
from core.errors import Invalid
from core.statements import Database

KEY_COMPROMISE = "keyCompromise"


def spki_sha256(public_key: CertificatePublicKeyTypes) -> str:
    """The lowercase hex SHA-256 of a public key's DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def certificate_spki_sha256(certificate_pem: str) -> str:
    """`spki_sha256` of a certificate's public key."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    return spki_sha256(certificate.public_key())


async def refuse_blocked(db: Database, public_key: CertificatePublicKeyTypes) -> None:
    """Refuse a key revoked for keyCompromise before, whoever's certificate carried it."""
    if await db.one(queries.BLOCKED_KEY, spki_sha256=spki_sha256(public_key)) is not None:
        raise Invalid.field(["csr"], "this public key was reported compromised; use a new key")
