"""Renewal: a new certificate for the same names and key type as an existing one, linked to
it by `renewed_from`, optionally revoking it (`superseded`) in the same transaction.

The names are validated again exactly as for a new request (`issuance.prepare`), and signed
by the current intermediate (`issuance.sign`). A renewal is rare next to issuance and fetch,
so it is plain ORM code run in a request thread, not the hot path's batched statements.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certificate_api.authority.service import IssuingCa
from certificate_api.certificates import issuance
from certificate_api.certificates.idempotency import judge
from certificate_api.errors import Conflict, NotFound, Unauthorized
from certificate_api.pki.keypool import KeyPool
from certificate_api.pki.sealing import Keyring, SealedKey, seal, unseal
from schema.accounts import Account
from schema.base import utcnow
from schema.certificates import (
    Certificate,
    CertificateHistory,
    CertificateKey,
    IdempotencyKey,
    Status,
    bump_crl_revision,
    certificate_event_data,
    history_entry,
    mark_revoked,
)
from schema.events import EventType, record_event

OPERATION = "renew"


@dataclass(frozen=True)
class RenewOrder:
    """What the customer asked: all optional."""

    validity_days: int | None
    csr: str | None
    revoke_previous: bool


@dataclass(frozen=True)
class Policy:
    """The service's settings a renewal follows, and what it signs with."""

    ca: IssuingCa
    keyring: Keyring
    keys: KeyPool | None
    public_base_url: str
    default_validity_days: int
    max_validity_days: int
    idempotency_ttl: timedelta


@dataclass(frozen=True)
class Renewed:
    """The new certificate, its private key when we made it, and whether it is new (not a
    replay of an `Idempotency-Key`)."""

    certificate: Certificate
    has_private_key: bool
    private_key_pem: str | None
    new: bool


def renew(
    session: Session,
    account_id: uuid.UUID,
    certificate_id: uuid.UUID,
    order: RenewOrder,
    policy: Policy,
    idempotency_key: str | None = None,
    fingerprint: str = "",
) -> Renewed:
    """Renew the caller's certificate: 404 if it is not theirs, 409 if it is revoked or on an
    admin's hold, 422 for a bad validity or CSR. Signs outside the transaction, then stores
    the new certificate (and revokes the old one when asked) in one."""
    _live_account(session, account_id)
    replayed = _replay(session, account_id, idempotency_key, fingerprint, policy)
    if replayed is not None:
        return replayed
    old = _renewable(session, account_id, certificate_id)
    prepared = issuance.prepare(
        old.common_name,
        list(old.dns_names),
        list(old.ip_addresses),
        old.key_type,
        order.validity_days,
        order.csr,
        True,
        policy.default_validity_days,
        policy.max_validity_days,
    )
    session.rollback()  # no lock or snapshot held while signing
    issued = issuance.sign(prepared, policy.ca, policy.public_base_url, policy.keys)
    try:
        return _store(session, account_id, certificate_id, order, issued, policy,
                      idempotency_key, fingerprint)  # fmt: skip
    except IntegrityError:
        session.rollback()  # a twin with the same Idempotency-Key committed first
        replayed = _replay(session, account_id, idempotency_key, fingerprint, policy)
        if replayed is None:
            raise
        return replayed


def _live_account(session: Session, account_id: uuid.UUID) -> Account:
    account = session.get(Account, account_id)
    if account is None or account.deleted_at is not None:
        raise Unauthorized()
    return account


def _renewable(
    session: Session, account_id: uuid.UUID, certificate_id: uuid.UUID, lock: bool = False
) -> Certificate:
    """The caller's certificate, if it may be renewed."""
    query = select(Certificate).where(Certificate.id == certificate_id)
    cert = session.scalars(query.with_for_update() if lock else query).first()
    if cert is None or cert.account_id != account_id:
        raise NotFound("no such certificate")
    if cert.revoked_at is not None:
        raise Conflict("a revoked certificate cannot be renewed")
    if not cert.is_active and _held_by_someone_else(session, cert):
        raise Conflict("the certificate is on an administrator's hold: it cannot be renewed")
    return cert


def _held_by_someone_else(session: Session, cert: Certificate) -> bool:
    """Whether the current hold was placed by someone other than the owner (an admin)."""
    actor = session.scalar(
        select(CertificateHistory.actor_id)
        .where(
            CertificateHistory.certificate_id == cert.id,
            CertificateHistory.to_status == Status.INACTIVE.value,
        )
        .order_by(CertificateHistory.id.desc())
        .limit(1)
    )
    return actor is not None and actor != cert.account_id


def _store(
    session: Session,
    account_id: uuid.UUID,
    certificate_id: uuid.UUID,
    order: RenewOrder,
    issued: issuance.Issued,
    policy: Policy,
    idempotency_key: str | None,
    fingerprint: str,
) -> Renewed:
    _live_account(session, account_id)
    old = _renewable(session, account_id, certificate_id, lock=True)  # again, now locked
    now = utcnow()
    cert = Certificate(
        id=issued.id,
        account_id=account_id,
        issuer_id=issued.issuer_id,
        serial_number=issued.serial_number,
        common_name=old.common_name,
        dns_names=list(old.dns_names),
        ip_addresses=list(old.ip_addresses),
        key_type=issued.key_type.value,
        is_active=True,
        not_before=issued.certificate.not_valid_before_utc,
        not_after=issued.certificate.not_valid_after_utc,
        certificate_pem=issued.certificate.public_bytes(serialization.Encoding.PEM).decode(),
        renewed_from=old.id,
        created_at=now,
        updated_at=now,
    )
    session.add(cert)
    session.flush()  # the certificate row before the rows that refer to it
    if issued.private_key_pem is not None:
        sealed = seal(policy.keyring, issued.private_key_pem, issued.id.bytes)
        session.add(
            CertificateKey(
                certificate_id=cert.id,
                key_id=sealed.key_id,
                nonce=sealed.nonce,
                ciphertext=sealed.ciphertext,
            )
        )
    session.add(history_entry(cert, "issued", None, account_id, now))
    record_event(session, EventType.CERTIFICATE_CREATED, cert.id, certificate_event_data(cert, now))
    if order.revoke_previous:
        mark_revoked(session, old, "superseded", account_id, now)
    if idempotency_key is not None:
        session.add(
            IdempotencyKey(
                account_id=account_id,
                operation=OPERATION,
                key=idempotency_key,
                request_hash=fingerprint,
                certificate_id=cert.id,
                status_code=201,
                created_at=now,
            )
        )
    if order.revoke_previous:
        session.flush()
        bump_crl_revision(session, [old])  # last before commit: it locks a counter slot
    session.commit()
    key_pem = issued.private_key_pem.decode() if issued.private_key_pem else None
    return Renewed(cert, key_pem is not None, key_pem, True)


def _replay(
    session: Session,
    account_id: uuid.UUID,
    key: str | None,
    fingerprint: str,
    policy: Policy,
) -> Renewed | None:
    """The first answer to a repeated `Idempotency-Key`, rebuilt from the rows."""
    if key is None:
        return None
    remembered = session.get(IdempotencyKey, (account_id, OPERATION, key))
    if remembered is None:
        return None
    if judge(remembered, fingerprint, policy.idempotency_ttl) is not None:
        session.delete(remembered)  # expired: the key is new again
        session.commit()
        return None
    cert = session.get(Certificate, remembered.certificate_id)
    assert cert is not None
    sealed = session.get(CertificateKey, cert.id)
    key_pem = None
    if sealed is not None:
        box = SealedKey(sealed.key_id, sealed.nonce, sealed.ciphertext)
        key_pem = unseal(policy.keyring, box, cert.id.bytes).decode()
    return Renewed(cert, sealed is not None, key_pem, False)


__all__ = ["Policy", "RenewOrder", "Renewed", "renew"]
