"""The statements of the hot routes (fetch and issue), built once from the schema's tables.

Each takes its values as named parameters at execution (`bindparam`), so it is compiled
once per process (see certificate_api/database.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Table, bindparam, delete, insert, select, update

from schema.accounts import Account
from schema.certificates import (
    Certificate,
    CertificateHistory,
    CertificateKey,
    CrlRevision,
    IdempotencyKey,
)
from schema.events import Event

_certificates: Table = Certificate.__table__  # type: ignore[assignment]


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

# What every request judges its caller's token by (service.authorize, service._visible):
# whether the account is deleted, whether it is an admin, and whether the token is of its
# current generation (not signed out since).
ACCOUNT_STATE = (Account.role, Account.deleted_at, Account.token_generation)

# Fetch: the caller's account (still there? admin?) and the certificate, in one round trip.
# An outer join, so that a missing certificate still tells a deleted account (401) from
# a certificate that is not there or not the caller's (404).
VISIBLE = (
    select(*ACCOUNT_STATE, *CERTIFICATE)
    .select_from(Account)
    .outerjoin(WITH_KEY, Certificate.id == bindparam("certificate_id"))
    .where(Account.id == bindparam("account_id"))
)

# Hold and release: the same, with the certificate row locked for the change. An inner
# join (a row lock cannot sit on the nullable side of an outer join).
LOCK_VISIBLE = (
    select(*ACCOUNT_STATE, *CERTIFICATE)
    .select_from(WITH_KEY)
    .join(Account, Account.id == bindparam("account_id"))
    .where(Certificate.id == bindparam("certificate_id"))
    .with_for_update(of=Certificate)
)

# Only a change, of a certificate not revoked: on SQLite, where FOR UPDATE does not exist,
# two concurrent requests may both read the old state, and this is what tells the second.
SET_HOLD = (
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
        updated_at=bindparam("changed_at", type_=Certificate.updated_at.type),
    )
)

# Only a certificate not revoked yet (the same reason).
SET_REVOKED = (
    update(Certificate)
    .where(Certificate.id == bindparam("certificate_id"), Certificate.revoked_at.is_(None))
    .returning(Certificate.id)
    .values(
        revoked_at=bindparam("at", type_=Certificate.revoked_at.type),
        revocation_reason=bindparam("reason", type_=Certificate.revocation_reason.type),
        updated_at=bindparam("at", type_=Certificate.updated_at.type),
    )
)

ACCOUNT = select(*ACCOUNT_STATE).where(Account.id == bindparam("account_id"))

# Issuing share-locks the account: one deleted meanwhile gets no new certificate.
LOCK_ACCOUNT = (
    select(Account.deleted_at)
    .where(Account.id == bindparam("account_id"))
    .with_for_update(read=True)
)

BY_ID = (
    select(*CERTIFICATE).select_from(WITH_KEY).where(Certificate.id == bindparam("certificate_id"))
)

SEALED_KEY = select(CertificateKey.key_id, CertificateKey.nonce, CertificateKey.ciphertext).where(
    CertificateKey.certificate_id == bindparam("certificate_id")
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

REMEMBERED = select(
    IdempotencyKey.request_hash, IdempotencyKey.certificate_id, IdempotencyKey.created_at
).where(
    IdempotencyKey.account_id == bindparam("account_id"),
    IdempotencyKey.operation == bindparam("operation"),
    IdempotencyKey.key == bindparam("key"),
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
