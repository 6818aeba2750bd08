"""Domain authorizations: which names an account may have certificates for."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from schema.accounts import Account
from schema.base import Base, rfc3339, utcnow


class DomainStatus(enum.StrEnum):
    """An authorization's state as clients see it. `expired` is derived from `expires_at`
    (a stored `valid` or `pending` past it reads as expired)."""

    PENDING = "pending"
    VALID = "valid"
    INVALID = "invalid"
    EXPIRED = "expired"


class ChallengeType(enum.StrEnum):
    """How control of a name is proved (RFC 8555 section 8)."""

    HTTP_01 = "http-01"
    DNS_01 = "dns-01"
    TLS_ALPN_01 = "tls-alpn-01"  # RFC 8737; offered through ACME only


class DomainAuthorization(Base):
    """An account's claim to a DNS name (and, with `include_subdomains`, everything under it)
    or an IP address. A validation asked for is the row itself (`validation_type` set while
    `pending`): it survives any crash, and a worker's claim on it is a lease that runs out."""

    __tablename__ = "domain_authorizations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(Account.id, ondelete="CASCADE"))
    # A DNS name in lower-case A-label form, or an IP address in its compressed form.
    name: Mapped[str] = mapped_column(String(253))
    include_subdomains: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=DomainStatus.PENDING.value)
    token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    validated_at: Mapped[datetime | None] = mapped_column(default=None)
    # Set by POST .../validate; null for operator grants.
    validation_type: Mapped[str | None] = mapped_column(String(16), default=None)
    validation_requested_at: Mapped[datetime | None] = mapped_column(default=None)
    validation_leased_until: Mapped[datetime | None] = mapped_column(default=None)
    validation_attempts: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        # Issuance reads an account's authorizations by name; listing pages by created_at.
        Index("ix_domain_authorizations_account_id_name", "account_id", "name"),
        Index(
            "ix_domain_authorizations_account_id_created_at_id", "account_id", "created_at", "id"
        ),
        Index("ix_domain_authorizations_created_at_id", "created_at", "id"),
        # One live (pending or valid) authorization per account, name and scope: posting the
        # same again answers with it. An expired one is marked `expired` before a new one.
        Index(
            "uq_domain_authorizations_live",
            "account_id",
            "name",
            "include_subdomains",
            unique=True,
            postgresql_where=text("status IN ('pending', 'valid')"),
            sqlite_where=text("status IN ('pending', 'valid')"),
        ),
        # The worker's queue: validations asked for and not settled.
        Index(
            "ix_domain_authorizations_validation_queue",
            "validation_requested_at",
            postgresql_where=text("status = 'pending' AND validation_type IS NOT NULL"),
            sqlite_where=text("status = 'pending' AND validation_type IS NOT NULL"),
        ),
    )


def shown_status(status: str, expires_at: datetime, now: datetime) -> DomainStatus:
    """The status a client sees: a pending or valid authorization past `expires_at` is expired."""
    if status in (DomainStatus.PENDING, DomainStatus.VALID) and expires_at <= now:
        return DomainStatus.EXPIRED
    return DomainStatus(status)


def domain_event_data(row: Any, status: str) -> dict[str, Any]:
    """`data` of a domain.validated / domain.invalid event."""
    return {
        "domain_id": str(row.id),
        "account_id": str(row.account_id),
        "name": row.name,
        "include_subdomains": row.include_subdomains,
        "status": status,
        "error": row.error,
        "expires_at": rfc3339(row.expires_at),
    }


class ValidationTurn(Base):
    """When the worker last took a validation of a customer (REST or ACME): among customers
    with as many validations in flight, the one served longest ago goes first, so a customer
    with a backlog takes turns with the others (worker/validation_queue.py)."""

    __tablename__ = "validation_turns"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(Account.id, ondelete="CASCADE"), primary_key=True
    )
    claimed_at: Mapped[datetime]
