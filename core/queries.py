"""The core's statements, built once from the schema's tables, each with its row type.

Each takes its values as named parameters at execution (`bindparam`), so it is compiled
once per process (see certificate_api/database.py). A `Query`'s row type is checked
against its columns when this module is imported.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Column, Table, bindparam, delete, insert, or_, select, update

from core.statements import Query
from schema.accounts import Account
from schema.certificates import (
    BlockedKey,
    Certificate,
    CertificateHistory,
    CertificateKey,
    CrlRevision,
    IdempotencyKey,
)
from schema.events import Event

_certificates: Table = Certificate.__table__  # type: ignore[assignment]


class AccountRow(NamedTuple):
    """Whether the calling account is still there, and its role."""

    role: str
    deleted_at: datetime | None
    token_generation: int


class LockedAccountRow(NamedTuple):
    """The account row as issuance's share lock reads it."""

    deleted_at: datetime | None


class CertificateRow(NamedTuple):
    """A certificate's columns, and whether its private key is held."""

    id: uuid.UUID
    account_id: uuid.UUID
    issuer_id: uuid.UUID
    serial_number: str
    common_name: str
    dns_names: list[str]
    ip_addresses: list[str]
    key_type: str
    is_active: bool
    held_at: datetime | None
    held_by_admin: bool
    revoked_at: datetime | None
    revocation_reason: str | None
    not_before: datetime
    not_after: datetime
    certificate_pem: str
    created_at: datetime
    updated_at: datetime
    renewed_from: uuid.UUID | None  # the certificate this one renews
    expiry_notified_at: datetime | None  # when its `certificate.expiring` was recorded
    has_private_key: bool


class VisibleRow(NamedTuple):
    """The caller's account and, when there is one, the certificate asked for (outer join:
    its columns are None when no certificate matched)."""

    role: str
    deleted_at: datetime | None
    token_generation: int
    id: uuid.UUID | None
    account_id: uuid.UUID | None
    issuer_id: uuid.UUID | None
    serial_number: str | None
    common_name: str | None
    dns_names: list[str] | None
    ip_addresses: list[str] | None
    key_type: str | None
    is_active: bool | None
    held_at: datetime | None
    held_by_admin: bool | None
    revoked_at: datetime | None
    revocation_reason: str | None
    not_before: datetime | None
    not_after: datetime | None
    certificate_pem: str | None
    created_at: datetime | None
    updated_at: datetime | None
    renewed_from: uuid.UUID | None
    expiry_notified_at: datetime | None
    has_private_key: bool | None

    @property
    def account(self) -> AccountRow:
        """The caller's account."""
        return AccountRow(self.role, self.deleted_at, self.token_generation)

    def certificate(self) -> CertificateRow | None:
        """The certificate, or None when none matched."""
        return None if self.id is None else CertificateRow._make(self[len(ACCOUNT_STATE) :])


class UpdatedRow(NamedTuple):
    """The id an UPDATE ... RETURNING changed."""

    id: uuid.UUID


class SealedKeyRow(NamedTuple):
    """A sealed private key."""

    key_id: str
    nonce: bytes
    ciphertext: bytes


class RememberedRow(NamedTuple):
    """What a remembered Idempotency-Key produced."""

    request_hash: str
    certificate_id: uuid.UUID
    created_at: datetime


def _param(column: Column[Any]) -> Any:
    return bindparam(column.key, type_=column.type)


def _insert(model: Any, *names: str) -> Any:
    """INSERT of these columns (all by default), each value a parameter of the column's name."""
    table: Table = model.__table__
    columns = [table.c[name] for name in names] if names else list(table.columns)
    return insert(table).values({column.key: _param(column) for column in columns})


# The certificate's columns, plus whether its private key is held (no second query), read
# through WITH_KEY. An outer join rather than an EXISTS: for a page of a list, PostgreSQL
# may run an EXISTS as one hashed scan of every key row (about 2 ms at 10,000 keys), where
# the join probes the primary key once per row returned.
CERTIFICATE = (
    *_certificates.columns,
    CertificateKey.certificate_id.is_not(None).label("has_private_key"),
)
WITH_KEY = _certificates.outerjoin(
    CertificateKey.__table__, CertificateKey.certificate_id == Certificate.id
)

# What every request judges its caller's token by (`actors.actor_of`): whether the account
# is deleted, whether it is an admin, and whether the token is of its current generation
# (not signed out since).
ACCOUNT_STATE = (Account.role, Account.deleted_at, Account.token_generation)

# Fetch: the caller's account (still there? admin?) and the certificate, in one round trip.
# An outer join, so that a missing certificate still tells a deleted account (401) from
# a certificate that is not there or not the caller's (404).
VISIBLE = Query(
    select(*ACCOUNT_STATE, *CERTIFICATE)
    .select_from(Account)
    .outerjoin(WITH_KEY, Certificate.id == bindparam("certificate_id"))
    .where(Account.id == bindparam("account_id")),
    VisibleRow,
)

# Hold and release: the same, with the certificate row locked for the change. An inner
# join (a row lock cannot sit on the nullable side of an outer join).
LOCK_VISIBLE = Query(
    select(*ACCOUNT_STATE, *CERTIFICATE)
    .select_from(WITH_KEY)
    .join(Account, Account.id == bindparam("account_id"))
    .where(Certificate.id == bindparam("certificate_id"))
    .with_for_update(of=Certificate),
    VisibleRow,
)

# Only a change, of a certificate not revoked: on SQLite, where FOR UPDATE does not exist,
# two concurrent requests may both read the old state, and this is what tells the second.
SET_HOLD = Query(
    update(Certificate)
    .where(
        Certificate.id == bindparam("certificate_id"),
        Certificate.is_active != bindparam("active", type_=Certificate.is_active.type),
        Certificate.revoked_at.is_(None),
    )
    .returning(Certificate.id)
    .values(
        is_active=bindparam("active", type_=Certificate.is_active.type),
        held_at=bindparam("hold_started", type_=Certificate.held_at.type),
        held_by_admin=bindparam("by_admin", type_=Certificate.held_by_admin.type),
        updated_at=bindparam("changed_at", type_=Certificate.updated_at.type),
    ),
    UpdatedRow,
)

# An admin taking over a hold its owner placed: only while it is still the owner's hold.
SET_ADMIN_HOLD = Query(
    update(Certificate)
    .where(
        Certificate.id == bindparam("certificate_id"),
        Certificate.is_active.is_(False),
        Certificate.held_by_admin.is_(False),
        Certificate.revoked_at.is_(None),
    )
    .returning(Certificate.id)
    .values(
        held_by_admin=True, updated_at=bindparam("changed_at", type_=Certificate.updated_at.type)
    ),
    UpdatedRow,
)

# Only a certificate not revoked yet (the same reason).
SET_REVOKED = Query(
    update(Certificate)
    .where(Certificate.id == bindparam("certificate_id"), Certificate.revoked_at.is_(None))
    .returning(Certificate.id)
    .values(
        revoked_at=bindparam("at", type_=Certificate.revoked_at.type),
        revocation_reason=bindparam("reason", type_=Certificate.revocation_reason.type),
        updated_at=bindparam("at", type_=Certificate.updated_at.type),
    ),
    UpdatedRow,
)

ACCOUNT = Query(
    select(*ACCOUNT_STATE).where(Account.id == bindparam("account_id")),
    AccountRow,
)

# Issuing share-locks the account: one deleted meanwhile gets no new certificate.
LOCK_ACCOUNT = Query(
    select(Account.deleted_at)
    .where(Account.id == bindparam("account_id"))
    .with_for_update(read=True),
    LockedAccountRow,
)

BY_ID = Query(
    select(*CERTIFICATE).select_from(WITH_KEY).where(Certificate.id == bindparam("certificate_id")),
    CertificateRow,
)

# Revoking by id (operators, benches): the certificate row locked for the change.
LOCK_BY_ID = Query(
    select(*CERTIFICATE)
    .select_from(WITH_KEY)
    .where(Certificate.id == bindparam("certificate_id"))
    .with_for_update(of=Certificate),
    CertificateRow,
)

# Deleting an account: its certificates still to revoke, locked, in one order (so two
# transactions revoking overlapping sets cannot deadlock).
LOCK_ACCOUNT_CERTIFICATES = Query(
    select(*CERTIFICATE)
    .select_from(WITH_KEY)
    .where(Certificate.account_id == bindparam("account_id"), Certificate.revoked_at.is_(None))
    .order_by(Certificate.created_at, Certificate.id)
    .with_for_update(of=Certificate),
    CertificateRow,
)

SEALED_KEY = Query(
    select(CertificateKey.key_id, CertificateKey.nonce, CertificateKey.ciphertext).where(
        CertificateKey.certificate_id == bindparam("certificate_id")
    ),
    SealedKeyRow,
)

# keyCompromise: the certificate's stored key destroyed, its public key blocked.
DELETE_KEY = delete(CertificateKey).where(
    CertificateKey.certificate_id == bindparam("certificate_id")
)
INSERT_BLOCKED_KEY = _insert(BlockedKey)


class BlockedRow(NamedTuple):
    """A certificate whose key was reported compromised."""

    certificate_id: uuid.UUID


# Blocked for this account: on one of its certificates, or for everyone (NULL).
BLOCKED_KEY = Query(
    select(BlockedKey.certificate_id)
    .where(
        BlockedKey.spki_sha256 == bindparam("spki_sha256"),
        or_(
            BlockedKey.account_id.is_(None),
            BlockedKey.account_id == bindparam("account_id", type_=BlockedKey.account_id.type),
        ),
    )
    .limit(1),
    BlockedRow,
)

# Destroying an account's stored keys (the row, not a flag).
DELETE_ACCOUNT_KEYS = delete(CertificateKey).where(
    CertificateKey.certificate_id.in_(
        select(Certificate.id).where(Certificate.account_id == bindparam("account_id"))
    )
)

INSERT_CERTIFICATE = _insert(Certificate)
INSERT_KEY = _insert(CertificateKey)
INSERT_HISTORY = _insert(
    CertificateHistory,
    "certificate_id", "action", "from_status", "to_status", "reason", "actor_id", "at",
)  # fmt: skip
INSERT_EVENT = _insert(
    Event,
    "id", "type", "subject_id", "payload", "created_at", "next_attempt_at", "state", "attempts",
)  # fmt: skip
INSERT_IDEMPOTENCY_KEY = _insert(IdempotencyKey)

REMEMBERED = Query(
    select(
        IdempotencyKey.request_hash, IdempotencyKey.certificate_id, IdempotencyKey.created_at
    ).where(
        IdempotencyKey.account_id == bindparam("account_id"),
        IdempotencyKey.operation == bindparam("operation"),
        IdempotencyKey.key == bindparam("key"),
    ),
    RememberedRow,
)

BUMP_CRL_REVISION = (
    update(CrlRevision)
    .where(CrlRevision.issuer_id == bindparam("issuer"), CrlRevision.slot == bindparam("counter"))
    .values(revision=CrlRevision.revision + 1)
)

# An expired key may be used afresh. A plain DELETE: two requests may race to reuse it.
FORGET_EXPIRED = delete(IdempotencyKey).where(
    IdempotencyKey.account_id == bindparam("account_id"),
    IdempotencyKey.operation == bindparam("operation"),
    IdempotencyKey.key == bindparam("key"),
    IdempotencyKey.created_at < bindparam("cutoff", type_=IdempotencyKey.created_at.type),
)
