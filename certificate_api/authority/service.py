"""CA rows: create on first start, import an existing CA, load the issuer for signing."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certificate_api.pki import ca as pki_ca
from certificate_api.pki.keys import KeyType, load_private_key_pem, private_key_to_pem
from certificate_api.pki.sealing import Keyring, SealedKey, seal, unseal
from schema.certificates import CaRole, CertificateAuthority

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuingCa:
    """The current intermediate with its key, and the chain clients are given."""

    id: uuid.UUID
    issuer: pki_ca.Issuer
    root_certificate: x509.Certificate
    chain_pem: str  # intermediate first, root last

    @property
    def certificate(self) -> x509.Certificate:
        """The intermediate's certificate."""
        return self.issuer.certificate

    @property
    def serial_number(self) -> str:
        """The intermediate's serial, lowercase hex: its URLs carry it."""
        return pki_ca.serial_hex(self.issuer.certificate)

    @property
    def crl_path(self) -> str:
        """Where this intermediate's own CRL is served, named in each leaf it signs."""
        return f"/api/ca/crl/{self.serial_number}"

    @property
    def issuer_path(self) -> str:
        """Where this intermediate's certificate is served (the leaves' AIA caIssuers)."""
        return f"/api/ca/issuer/{self.serial_number}.cer"


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def new_row(
    role: CaRole,
    cert: x509.Certificate,
    key: object | None,
    keyring: Keyring,
    parent_id: uuid.UUID | None = None,
) -> CertificateAuthority:
    """A current CA row for this certificate, its key (if any) sealed to the row's id."""
    row = CertificateAuthority(
        id=uuid.uuid4(),
        role=role.value,
        parent_id=parent_id,
        subject=cert.subject.rfc4514_string(),
        certificate_pem=_pem(cert),
        not_after=cert.not_valid_after_utc,
        serial_number=pki_ca.serial_hex(cert),
        is_current=True,
    )
    if key is not None:
        sealed = seal(keyring, private_key_to_pem(key), row.id.bytes)  # type: ignore[arg-type]
        row.key_id, row.key_nonce, row.key_ciphertext = (
            sealed.key_id,
            sealed.nonce,
            sealed.ciphertext,
        )
    return row


def _store(
    session: Session,
    keyring: Keyring,
    root: pki_ca.Issuer | x509.Certificate,
    intermediate: pki_ca.Issuer,
) -> None:
    """Make this root and intermediate the current ones (older rows are kept, not current)."""
    root_cert = root.certificate if isinstance(root, pki_ca.Issuer) else root
    root_key = root.private_key if isinstance(root, pki_ca.Issuer) else None
    session.execute(
        update(CertificateAuthority)
        .where(CertificateAuthority.role.in_([CaRole.ROOT.value, CaRole.INTERMEDIATE.value]))
        .values(is_current=False)
    )
    root_row = new_row(CaRole.ROOT, root_cert, root_key, keyring)
    session.add(root_row)
    session.flush()
    session.add(
        new_row(
            CaRole.INTERMEDIATE,
            intermediate.certificate,
            intermediate.private_key,
            keyring,
            parent_id=root_row.id,
        )
    )
    session.commit()


def current_row(session: Session, role: CaRole) -> CertificateAuthority | None:
    """The current CA row of a role."""
    return session.scalars(
        select(CertificateAuthority).where(
            CertificateAuthority.role == role.value, CertificateAuthority.is_current.is_(True)
        )
    ).first()


def unseal_key(row: CertificateAuthority, keyring: Keyring) -> bytes:
    """The row's private key PEM."""
    if row.key_id is None or row.key_nonce is None or row.key_ciphertext is None:
        raise ValueError(f"CA {row.subject} has no private key here")
    return unseal(keyring, SealedKey(row.key_id, row.key_nonce, row.key_ciphertext), row.id.bytes)


def load(session: Session, keyring: Keyring) -> IssuingCa | None:
    """The current issuing CA, or None before the CA is created."""
    inter = current_row(session, CaRole.INTERMEDIATE)
    root = current_row(session, CaRole.ROOT)
    if inter is None or root is None:
        return None
    return issuing_ca(inter, root, keyring)


def issuing_ca(
    inter: CertificateAuthority, root: CertificateAuthority, keyring: Keyring
) -> IssuingCa:
    """An intermediate row and its root's, ready to sign."""
    issuer = pki_ca.load_issuer(inter.certificate_pem.encode(), unseal_key(inter, keyring))
    root_cert = x509.load_pem_x509_certificate(root.certificate_pem.encode())
    return IssuingCa(inter.id, issuer, root_cert, inter.certificate_pem + root.certificate_pem)


@dataclass(frozen=True)
class CaSpec:
    """What a new CA is made of: its name, its keys' types, and the public base URL each
    intermediate names its root's CRL and certificate under."""

    name: str
    root_key_type: str
    intermediate_key_type: str
    public_base_url: str | None = None


def create(session: Session, keyring: Keyring, spec: CaSpec) -> IssuingCa:
    """A new root and intermediate, made current."""
    root, intermediate = pki_ca.create_ca(
        KeyType(spec.root_key_type),
        KeyType(spec.intermediate_key_type),
        spec.name,
        spec.public_base_url,
    )
    _store(session, keyring, root, intermediate)
    created = load(session, keyring)
    assert created is not None
    log.info(
        "created CA", extra={"intermediate": intermediate.certificate.subject.rfc4514_string()}
    )
    return created


def ensure(session: Session, keyring: Keyring, spec: CaSpec) -> IssuingCa:
    """Load the CA, creating it on first start; concurrent starters agree on one."""
    existing = load(session, keyring)
    if existing is not None:
        return existing
    try:
        return create(session, keyring, spec)
    except IntegrityError:
        session.rollback()  # another process created it first: use theirs
        loaded = load(session, keyring)
        assert loaded is not None
        return loaded


def import_ca(
    session: Session, keyring: Keyring, intermediate_pem: bytes, key_pem: bytes, root_pem: bytes
) -> IssuingCa:
    """Make an existing intermediate (with its key) and its root the current CA."""
    intermediate = pki_ca.load_issuer(intermediate_pem, key_pem)
    root = x509.load_pem_x509_certificate(root_pem)
    try:
        intermediate.certificate.verify_directly_issued_by(root)
    except (ValueError, TypeError, Exception) as exc:
        raise pki_ca.CaImportError(f"the intermediate was not issued by this root: {exc}") from None
    _store(session, keyring, root, intermediate)
    loaded = load(session, keyring)
    assert loaded is not None
    return loaded


__all__ = ["IssuingCa", "create", "ensure", "import_ca", "load", "load_private_key_pem"]
