"""Issued certificates, their sealed private keys, their audit history, and the CAs."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from schema.base import BIGINT_PK, Base, utcnow


class Status(enum.StrEnum):
    """A certificate's state as clients see it; derived, never stored."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    REVOKED = "revoked"
    EXPIRED = "expired"


def status_of(
    revoked_at: datetime | None, not_after: datetime, is_active: bool, now: datetime
) -> Status:
    """A certificate's status from its fields: revoked, then expired, then the hold flag."""
    if revoked_at is not None:
        return Status.REVOKED
    if not_after <= now:
        return Status.EXPIRED
    return Status.ACTIVE if is_active else Status.INACTIVE


class CaRole(enum.StrEnum):
    """What a CA row is for."""

    ROOT = "root"
    INTERMEDIATE = "intermediate"
    OCSP_RESPONDER = "ocsp_responder"


class CertificateAuthority(Base):
    """A CA certificate with its sealed key; the current intermediate issues leaves."""

    __tablename__ = "certificate_authorities"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    role: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("certificate_authorities.id"), default=None
    )
    subject: Mapped[str] = mapped_column(String(500))
    certificate_pem: Mapped[str] = mapped_column(Text)
    not_after: Mapped[datetime]
    # A root imported without its key can still anchor the chain; it just cannot sign.
    key_id: Mapped[str | None] = mapped_column(String(64), default=None)
    key_nonce: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    key_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    is_current: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Lowercase hex, as in the URLs of its CRL and certificate (/api/ca/crl/{serial}).
    serial_number: Mapped[str | None] = mapped_column(String(40), default=None, unique=True)
    # Set by `ca-admin revoke-intermediate`: the CA is then listed on its parent's CRL.
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revocation_reason: Mapped[str | None] = mapped_column(String(32), default=None)

    __table_args__ = (
        # One current root and one current intermediate: concurrent first starts cannot both
        # create one. OCSP responders are current per intermediate (below).
        Index(
            "uq_certificate_authorities_current_role",
            "role",
            unique=True,
            postgresql_where=text("is_current AND role <> 'ocsp_responder'"),
            sqlite_where=text("is_current AND role <> 'ocsp_responder'"),
        ),
        # Every intermediate that still has leaves answers OCSP through its own responder.
        Index(
            "uq_certificate_authorities_current_responder_parent_id",
            "parent_id",
            unique=True,
            postgresql_where=text("is_current AND role = 'ocsp_responder'"),
            sqlite_where=text("is_current AND role = 'ocsp_responder'"),
        ),
    )


class CertificateKey(Base):
    """A server-generated private key, AES-GCM sealed and bound to its certificate's id."""

    __tablename__ = "certificate_keys"

    certificate_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("certificates.id", ondelete="CASCADE"), primary_key=True
    )
    key_id: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_certificate_keys_key_id", "key_id"),)


# The predicate of the expiry-notice index; the worker's query repeats it so the index applies.
EXPIRY_DUE = "expiry_notified_at IS NULL AND is_active AND revoked_at IS NULL"


class Certificate(Base):
    """A leaf certificate issued to an account."""

    __tablename__ = "certificates"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))
    issuer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("certificate_authorities.id"))
    serial_number: Mapped[str] = mapped_column(String(40), unique=True)
    common_name: Mapped[str] = mapped_column(String(255))
    dns_names: Mapped[list[str]] = mapped_column(JSON, default=list)
    ip_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    key_type: Mapped[str] = mapped_column(String(16))
    is_active: Mapped[bool] = mapped_column(default=True)
    # When the current hold began (is_active false); it is the CRL/OCSP revocation time.
    held_at: Mapped[datetime | None] = mapped_column(default=None)
    # Whether an admin placed the current hold: then only an admin may lift it.
    held_by_admin: Mapped[bool] = mapped_column(default=False, server_default=false())
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revocation_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    certificate_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The certificate this one renews, if any.
    renewed_from: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("certificates.id"), default=None
    )
    # Set, in the same transaction as its `certificate.expiring` event, when that was recorded.
    expiry_notified_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        # Listing an account's certificates, newest first, by keyset.
        Index("ix_certificates_account_id_created_at_id", "account_id", "created_at", "id"),
        # The hot query: an account's active certificates.
        Index(
            "ix_certificates_active_account_id_created_at_id",
            "account_id",
            "created_at",
            "id",
            postgresql_where=text("is_active AND revoked_at IS NULL"),
            sqlite_where=text("is_active AND revoked_at IS NULL"),
        ),
        # The CRL: every held or revoked certificate.
        Index(
            "ix_certificates_off_serial_number",
            "issuer_id",
            "serial_number",
            postgresql_where=text("NOT is_active OR revoked_at IS NOT NULL"),
            sqlite_where=text("NOT is_active OR revoked_at IS NOT NULL"),
        ),
        # `expires_before=` and the expiry gauges. One account's list with a near cutoff
        # reads it too (filtering on account_id); with a far one, the account's own index.
        Index("ix_certificates_not_after", "not_after"),
        # Expiry notices still to record: active certificates not yet told about.
        Index(
            "ix_certificates_expiry_due_not_after",
            "not_after",
            postgresql_where=text(EXPIRY_DUE),
            sqlite_where=text(EXPIRY_DUE),
        ),
    )

    def status_at(self, now: datetime) -> Status:
        """Derive the status: revoked, then expired, then the hold flag."""
        return status_of(self.revoked_at, self.not_after, self.is_active, now)

    @property
    def status(self) -> Status:
        """The status now."""
        return self.status_at(utcnow())


class CertificateHistory(Base):
    """Append-only audit trail: every state change, who made it, from what to what."""

    __tablename__ = "certificate_history"

    id: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    certificate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("certificates.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32), default=None)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class BlockedKey(Base):
    """A public key revoked for keyCompromise, by the SHA-256 of its SubjectPublicKeyInfo:
    no later request of `account_id` (the certificate's owner) may have it certified, or of
    any account when `account_id` is NULL (the revocation proved possession of the private
    key). One row per revoked certificate (a key may have been certified more than once
    before it was reported)."""

    __tablename__ = "blocked_keys"

    certificate_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("certificates.id"), primary_key=True
    )
    spki_sha256: Mapped[str] = mapped_column(String(64), index=True)
    blocked_at: Mapped[datetime] = mapped_column(default=utcnow)
    account_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("accounts.id"), default=None)


class IdempotencyKey(Base):
    """A remembered `Idempotency-Key`: which certificate it produced, never a copy of it."""

    __tablename__ = "idempotency_keys"

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    operation: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    certificate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("certificates.id"))
    status_code: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class CrlState(Base):
    """Per issuing CA: the last CRL built, its number, and the revision it was built from.

    Every hold, release and revocation bumps one of the issuer's `crl_revisions` slots in its
    own transaction; the sum of the slots is the issuer's revision. The cached CRL is
    current while `built_revision` equals that sum.
    """

    __tablename__ = "crl_state"

    issuer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("certificate_authorities.id"), primary_key=True
    )
    built_revision: Mapped[int | None] = mapped_column(BIGINT_PK, default=None)
    crl_number: Mapped[int] = mapped_column(BIGINT_PK, default=0)
    der: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    this_update: Mapped[datetime | None] = mapped_column(default=None)
    next_update: Mapped[datetime | None] = mapped_column(default=None)
    entries: Mapped[int] = mapped_column(Integer, default=0)
    built_at: Mapped[datetime | None] = mapped_column(default=None)


CRL_SLOTS = 16


class CrlRevision(Base):
    """One slot of an issuer's change counter. Changes bump the slot of their certificate,
    so concurrent holds and revocations of different certificates rarely wait on one row
    (a single counter row would make every such commit, fsync included, wait its turn)."""

    __tablename__ = "crl_revisions"

    issuer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("certificate_authorities.id"), primary_key=True
    )
    slot: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(BIGINT_PK, default=0)
