"""Operators' changes of the CA hierarchy: a new intermediate under the current root, an
intermediate revoked on the root's CRL, the root CRL re-signed. Each needs the root's key:
sealed in the database (the default), or given from a file when the root is kept offline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from certificate_api.authority.service import (
    IssuingCa,
    current_row,
    issuing_ca,
    new_row,
    unseal_key,
)
from certificate_api.pki import ca as pki_ca
from certificate_api.pki.keys import KeyType, generate_private_key
from certificate_api.pki.sealing import Keyring
from certificate_api.revocation.root import publish_root_crl
from certificate_api.revocation.service import Crl, add_crl_state
from schema.base import utcnow
from schema.certificates import CaRole, CertificateAuthority

# Reasons RFC 5280 allows for a CA certificate on its issuer's CRL.
INTERMEDIATE_REASONS = (
    "unspecified",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
)


class HierarchyError(ValueError):
    """An operator's request the CA hierarchy cannot follow; the message says why."""


@dataclass(frozen=True)
class RootKey:
    """How an operator's command reaches the root's key: unsealed from its row with the
    keyring, or given from a file (`pem`, the root kept offline); and how long the CRLs
    it signs are valid."""

    keyring: Keyring
    pem: bytes | None
    crl_validity: timedelta


def root_signer(
    row: CertificateAuthority, keyring: Keyring, root_key_pem: bytes | None
) -> pki_ca.Issuer:
    """The root with its key: from the file an operator gave, or unsealed from its row."""
    if root_key_pem is not None:
        try:
            return pki_ca.load_issuer(row.certificate_pem.encode(), root_key_pem)
        except pki_ca.CaImportError as exc:
            raise HierarchyError(f"--root-key: {exc} (root {row.subject})") from None
    if row.key_ciphertext is None:
        raise HierarchyError(
            f"the key of root {row.subject} is not in the database: give it with --root-key FILE"
        )
    return pki_ca.load_issuer(row.certificate_pem.encode(), unseal_key(row, keyring))


def rotate_intermediate(
    session: Session, root_key: RootKey, name: str, key_type: str, public_base_url: str
) -> IssuingCa:
    """Issue a new intermediate under the current root and make it the issuer of new leaves.
    The previous one stays, with its CRL and OCSP responder, for the leaves it signed."""
    root_row = current_row(session, CaRole.ROOT)
    if root_row is None:
        raise HierarchyError("there is no CA yet: run `ca-admin init-ca` first")
    keyring = root_key.keyring
    root = root_signer(root_row, keyring, root_key.pem)
    siblings = session.scalar(
        select(func.count()).where(
            CertificateAuthority.role == CaRole.INTERMEDIATE.value,
            CertificateAuthority.parent_id == root_row.id,
        )
    )
    key = generate_private_key(KeyType(key_type))
    # A name of its own: relying parties match a CRL to its issuer by name (and key id).
    certificate = pki_ca.build_intermediate(
        f"{name} Issuing CA {(siblings or 0) + 1}",
        key,
        root,
        organization=name,
        public_base_url=public_base_url,
    )
    session.execute(
        update(CertificateAuthority)
        .where(
            CertificateAuthority.role == CaRole.INTERMEDIATE.value,
            CertificateAuthority.is_current.is_(True),
        )
        .values(is_current=False)
    )
    row = new_row(CaRole.INTERMEDIATE, certificate, key, keyring, parent_id=root_row.id)
    session.add(row)
    session.flush()
    add_crl_state(session, row.id)
    publish_root_crl(session, root_row.id, root, root_key.crl_validity)
    session.commit()
    return issuing_ca(row, root_row, keyring)


def revoke_intermediate(
    session: Session, root_key: RootKey, serial: str, reason: str
) -> CertificateAuthority:
    """Revoke a former intermediate: it is listed on its root's CRL, signed now. The current
    one cannot be revoked (rotate first, so that new leaves have an issuer)."""
    if reason not in INTERMEDIATE_REASONS:
        raise HierarchyError(f"reason must be one of {', '.join(INTERMEDIATE_REASONS)}")
    row = session.scalars(
        select(CertificateAuthority)
        .where(
            CertificateAuthority.role == CaRole.INTERMEDIATE.value,
            CertificateAuthority.serial_number == serial.lower().lstrip("0"),
        )
        .with_for_update()
    ).first()
    if row is None or row.parent_id is None:
        raise HierarchyError(f"no intermediate with serial {serial}")
    if row.is_current:
        raise HierarchyError(
            "this is the current intermediate: `ca-admin rotate-intermediate` first"
        )
    if row.revoked_at is not None:
        raise HierarchyError(f"already revoked ({row.revocation_reason})")
    root_row = session.get(CertificateAuthority, row.parent_id)
    assert root_row is not None
    root = root_signer(root_row, root_key.keyring, root_key.pem)
    row.revoked_at, row.revocation_reason = utcnow().replace(microsecond=0), reason
    publish_root_crl(session, root_row.id, root, root_key.crl_validity)
    session.commit()
    return row


def sign_root_crl(session: Session, root_key: RootKey) -> Crl:
    """Re-sign the current root's CRL (before its next update, when the root is offline)."""
    root_row = current_row(session, CaRole.ROOT)
    if root_row is None:
        raise HierarchyError("there is no CA yet: run `ca-admin init-ca` first")
    root = root_signer(root_row, root_key.keyring, root_key.pem)
    crl = publish_root_crl(session, root_row.id, root, root_key.crl_validity)
    session.commit()
    return crl


def export_root_key(session: Session, keyring: Keyring) -> bytes:
    """The current root's private key (PEM), to keep offline."""
    root_row = current_row(session, CaRole.ROOT)
    if root_row is None:
        raise HierarchyError("there is no CA yet: run `ca-admin init-ca` first")
    if root_row.key_ciphertext is None:
        raise HierarchyError("the root's key is not in the database (already offline)")
    return unseal_key(root_row, keyring)


def erase_root_key(session: Session, exported_pem: bytes) -> None:
    """Erase the sealed root key from the database, once its exported copy is safe; refuses
    unless `exported_pem` is that very key."""
    root_row = current_row(session, CaRole.ROOT)
    assert root_row is not None
    key = serialization.load_pem_private_key(exported_pem, password=None)
    root = x509.load_pem_x509_certificate(root_row.certificate_pem.encode()).public_key()
    if key.public_key() != root:
        raise HierarchyError("the exported key is not the root's: nothing erased")
    root_row.key_id = root_row.key_nonce = root_row.key_ciphertext = None
    session.commit()


__all__ = [
    "INTERMEDIATE_REASONS",
    "HierarchyError",
    "erase_root_key",
    "export_root_key",
    "revoke_intermediate",
    "rotate_intermediate",
    "sign_root_crl",
]
