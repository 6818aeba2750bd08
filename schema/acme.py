"""ACME (RFC 8555): accounts bound to customers, their orders, authorizations and challenges,
the external account binding keys customers make, and the nonces already redeemed.

An ACME account acts for one customer account (`account_id`): its certificates are the
customer's, and the customer's domain authorizations cover its orders. Deleting the customer
deletes these rows with it (ON DELETE CASCADE) once the account row goes; until then the
deletion marks its ACME accounts `deactivated`.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from schema.accounts import Account
from schema.base import Base, utcnow
from schema.certificates import Certificate
from schema.domains import DomainAuthorization


class AcmeAccountStatus(enum.StrEnum):
    """RFC 8555 section 7.1.6."""

    VALID = "valid"
    DEACTIVATED = "deactivated"
    REVOKED = "revoked"


class OrderStatus(enum.StrEnum):
    """RFC 8555 section 7.1.6."""

    PENDING = "pending"
    READY = "ready"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class AuthzStatus(enum.StrEnum):
    """RFC 8555 section 7.1.6 (`expired` is also derived from `expires_at`)."""

    PENDING = "pending"
    VALID = "valid"
    INVALID = "invalid"
    DEACTIVATED = "deactivated"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ChallengeStatus(enum.StrEnum):
    """RFC 8555 section 7.1.6."""

    PENDING = "pending"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class AcmeEabKey(Base):
    """An external account binding key a customer made (`POST /api/acme/eab`): good for one
    ACME account until `expires_at`. The HMAC key is sealed under the master key, bound to
    its key id, like every other secret at rest."""

    __tablename__ = "acme_eab_keys"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(Account.id, ondelete="CASCADE"), index=True
    )
    sealed_with: Mapped[str] = mapped_column(String(64))  # the master key's id
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)  # retention walks it
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class AcmeAccount(Base):
    """An ACME account: a public key (JWK) acting for a customer account."""

    __tablename__ = "acme_accounts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(Account.id, ondelete="CASCADE"), index=True
    )
    # RFC 7638 thumbprint (SHA-256, base64url) of the key: one account per key.
    thumbprint: Mapped[str] = mapped_column(String(64), unique=True)
    jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=AcmeAccountStatus.VALID.value)
    contact: Mapped[list[str]] = mapped_column(JSON, default=list)
    eab_key_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AcmeOrder(Base):
    """A client's request for a certificate (RFC 8555 section 7.1.3)."""

    __tablename__ = "acme_orders"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    acme_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(AcmeAccount.id, ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16), default=OrderStatus.PENDING.value)
    # [{"type": "dns" | "ip", "value": ...}], normalized, in the order the client gave them.
    identifiers: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    expires_at: Mapped[datetime] = mapped_column(index=True)  # retention walks it
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    certificate_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey(Certificate.id, ondelete="SET NULL"), default=None
    )
    replaces: Mapped[str | None] = mapped_column(String(200), default=None)  # RFC 9773
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_acme_orders_acme_account_id_created_at", "acme_account_id", "created_at"),
    )


class AcmeAuthorization(Base):
    """Proof of control of one identifier of one order. Valid at once when a domain
    authorization of the customer covers it (`domain_authorization_id`); otherwise pending
    until one of its challenges is validated, which then creates that domain authorization."""

    __tablename__ = "acme_authorizations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(AcmeOrder.id, ondelete="CASCADE"), index=True
    )
    identifier_type: Mapped[str] = mapped_column(String(8))  # dns | ip
    value: Mapped[str] = mapped_column(String(253))  # without the wildcard's "*."
    wildcard: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=AuthzStatus.PENDING.value)
    expires_at: Mapped[datetime]
    domain_authorization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey(DomainAuthorization.id, ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AcmeChallenge(Base):
    """One way to prove an authorization. A response from the client (`POST` to it) makes it
    `processing`: the row is then the worker's queue entry (leased like a domain
    validation), so it survives any crash."""

    __tablename__ = "acme_challenges"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    authorization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(AcmeAuthorization.id, ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(16))
    token: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=ChallengeStatus.PENDING.value)
    # The account key's thumbprint when the client responded: the key authorization's.
    thumbprint: Mapped[str | None] = mapped_column(String(64), default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    validated_at: Mapped[datetime | None] = mapped_column(default=None)
    requested_at: Mapped[datetime | None] = mapped_column(default=None)
    leased_until: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index(
            "ix_acme_challenges_queue",
            "requested_at",
            postgresql_where=text("status = 'processing'"),
            sqlite_where=text("status = 'processing'"),
        ),
    )


class AcmeNonce(Base):
    """A nonce already used (nonces themselves are HMAC-signed, not stored when made): its
    insert is the redemption, so a second use fails on the primary key in any process."""

    __tablename__ = "acme_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
