"""Certificate rules: issue, read, list, hold and release, revoke. No FastAPI here."""

from __future__ import annotations

import base64
import binascii
import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy import Select, and_, bindparam, not_, select, tuple_
from sqlalchemy.exc import IntegrityError

from certificate_api.certificates import queries
from certificate_api.certificates.idempotency import judge, remembered_values, replay
from certificate_api.certificates.issuance import Issued, IssueOrder
from certificate_api.database import Database, Transaction
from certificate_api.errors import Conflict, NotFound, Unauthorized, Unprocessable
from certificate_api.pki.sealing import Keyring, SealedKey, seal, unseal
from schema.accounts import Role
from schema.base import utcnow
from schema.certificates import (
    Certificate,
    Status,
    certificate_event_data,
    crl_slot,
    history_values,
    status_of,
)
from schema.events import EventType, event_values
from schema.tokens import TokenClaims


@dataclass(frozen=True)
class Actor:
    """Who is acting: an account and whether it is an admin."""

    id: uuid.UUID
    is_admin: bool


async def authorize(db: Database, claims: TokenClaims) -> Actor:
    """The actor a verified token names, if its account still exists; 401 otherwise."""
    row = await db.one(queries.ACCOUNT, account_id=claims.account_id)
    if row is None or row.deleted_at is not None:
        raise Unauthorized()
    return Actor(claims.account_id, Role(row.role) is Role.ADMIN)


# --- issuance -------------------------------------------------------------------------------


async def store_issued(
    db: Database,
    keyring: Keyring,
    account_id: uuid.UUID,
    order: IssueOrder,
    issued: Issued,
    idempotency_key: str | None,
    fingerprint: str,
    ttl: timedelta,
) -> tuple[Any, bool]:
    """Persist a signed certificate with its sealed key, history, event and idempotency record,
    in one transaction. Returns the certificate row and whether it is new: a concurrent
    request with the same `Idempotency-Key` that committed first wins, and its certificate
    is returned instead. 401 if the account was deleted meanwhile.
    """
    now = utcnow()
    values: dict[str, Any] = {
        "id": issued.id,
        "account_id": account_id,
        "issuer_id": issued.issuer_id,
        "serial_number": issued.serial_number,
        "common_name": order.common_name,
        "dns_names": list(order.dns_names),
        "ip_addresses": [str(ip) for ip in order.ip_addresses],
        "key_type": issued.key_type.value,
        "is_active": order.is_active,
        "held_at": None if order.is_active else now,
        "revoked_at": None,
        "revocation_reason": None,
        "not_before": issued.certificate.not_valid_before_utc,
        "not_after": issued.certificate.not_valid_after_utc,
        "certificate_pem": issued.certificate.public_bytes(serialization.Encoding.PEM).decode(),
        "created_at": now,
        "updated_at": now,
        "renewed_from": None,
        "expiry_notified_at": None,
    }
    cert = SimpleNamespace(**values, has_private_key=issued.private_key_pem is not None)
    try:
        async with db.transaction() as tx:
            # Sent together, read once at the end: one round trip before the commit.
            account = await tx.start(queries.LOCK_ACCOUNT, account_id=account_id)
            await tx.execute(queries.INSERT_CERTIFICATE, **values)
            if issued.private_key_pem is not None:
                sealed = seal(keyring, issued.private_key_pem, issued.id.bytes)
                await tx.execute(
                    queries.INSERT_KEY,
                    certificate_id=issued.id,
                    key_id=sealed.key_id,
                    nonce=sealed.nonce,
                    ciphertext=sealed.ciphertext,
                    created_at=now,
                )
            await _remember(tx, account_id, "issue", idempotency_key, fingerprint, cert.id, 201)
            # Issued on hold, it belongs on the CRL.
            created = ("issued", EventType.CERTIFICATE_CREATED)
            await _record(tx, cert, created, None, account_id, now, on_crl=not order.is_active)
            locked = await account.one()
            if locked is None or locked.deleted_at is not None:
                raise Unauthorized()  # rolls all of it back
    except IntegrityError:
        winner = await replay(db, account_id, "issue", idempotency_key, fingerprint, ttl)
        if winner is None:
            raise  # not an idempotency race (a serial collision): let it surface
        return winner, False
    return cert, True


async def private_key_pem(db: Database, keyring: Keyring, certificate_id: uuid.UUID) -> str | None:
    """The certificate's private key, unsealed, or None when not held."""
    return _unsealed(
        keyring, certificate_id, await db.one(queries.SEALED_KEY, certificate_id=certificate_id)
    )


def _unsealed(keyring: Keyring, certificate_id: uuid.UUID, row: Any) -> str | None:
    if row is None:
        return None
    sealed = SealedKey(row.key_id, row.nonce, row.ciphertext)
    return unseal(keyring, sealed, certificate_id.bytes).decode()


# --- reading --------------------------------------------------------------------------------


async def visible_to(
    db: Database, certificate_id: uuid.UUID, claims: TokenClaims
) -> tuple[Any, Actor]:
    """The certificate row (`queries.VISIBLE`) the caller may see, and who the caller is:
    one round trip, the hot path of fetch."""
    row = await db.one(queries.VISIBLE, certificate_id=certificate_id, account_id=claims.account_id)
    return row, _visible(row, row.account_id if row is not None else None, claims)


async def _lock_visible(
    tx: Transaction, certificate_id: uuid.UUID, claims: TokenClaims
) -> tuple[Any, Actor]:
    """`visible_to` in a transaction, with the certificate row locked for the change."""
    row = await tx.one(
        queries.LOCK_VISIBLE, certificate_id=certificate_id, account_id=claims.account_id
    )
    if row is None:  # 401 if the account is gone, else the certificate is not there
        row = await tx.one(queries.ACCOUNT, account_id=claims.account_id)
    return row, _visible(row, getattr(row, "account_id", None), claims)


def _visible(row: Any, owner: uuid.UUID | None, claims: TokenClaims) -> Actor:
    """The rule of every route on one certificate: a deleted (or unknown) account is 401;
    a certificate that is missing or another account's is 404, unless the caller is admin."""
    if row is None or row.deleted_at is not None:
        raise Unauthorized()
    actor = Actor(claims.account_id, Role(row.role) is Role.ADMIN)
    if owner is None or not (actor.is_admin or owner == actor.id):
        raise NotFound("no such certificate")
    return actor


def status_filter(status: Status) -> Any:
    """SQL for "has this status at :now"."""
    now = bindparam("now", type_=Certificate.not_after.type)
    # Plain `is_active` (not `IS true`), so PostgreSQL matches the partial index's predicate.
    live = and_(Certificate.revoked_at.is_(None), Certificate.not_after > now)
    return {
        Status.ACTIVE: and_(live, Certificate.is_active),
        Status.INACTIVE: and_(live, not_(Certificate.is_active)),
        Status.REVOKED: Certificate.revoked_at.is_not(None),
        Status.EXPIRED: and_(Certificate.revoked_at.is_(None), Certificate.not_after <= now),
    }[status]


def encode_cursor(cert: Any) -> str:
    """An opaque cursor after this certificate."""
    raw = f"{cert.created_at.astimezone(UTC).isoformat()}|{cert.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor points after; 422 when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, ident = raw.partition("|")
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is None:
            raise ValueError("naive")
        return moment, uuid.UUID(ident)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise Unprocessable.field(["query", "cursor"], "not a cursor from this API") from None


@functools.cache
def list_statement(
    by_owner: bool, active: bool | None, status: Status | None, after: bool, expiring: bool = False
) -> Select[Any]:
    """Newest first, by keyset on (created_at, id), so pages stay stable under inserts.

    One statement per combination of filters (a few dozen), each built and compiled once;
    the values are parameters: owner, now, after_created, after_id, limit.
    """
    query = select(*queries.CERTIFICATE).select_from(queries.WITH_KEY)
    if by_owner:
        query = query.where(Certificate.account_id == bindparam("owner"))
    if active is True:
        query = query.where(status_filter(Status.ACTIVE))
    elif active is False:
        query = query.where(not_(status_filter(Status.ACTIVE)))
    if status is not None:
        query = query.where(status_filter(status))
    if expiring:  # `expires_before=`: read through ix_certificates_not_after
        query = query.where(Certificate.not_after < bindparam("expires_before"))
    if after:
        created = bindparam("after_created", type_=Certificate.created_at.type)
        ident = bindparam("after_id", type_=Certificate.id.type)
        query = query.where(tuple_(Certificate.created_at, Certificate.id) < tuple_(created, ident))
    return query.order_by(Certificate.created_at.desc(), Certificate.id.desc()).limit(
        bindparam("limit")
    )


async def list_page(
    db: Database,
    actor: Actor,
    account_id: uuid.UUID | None,
    active: bool | None,
    status: Status | None,
    cursor: str | None,
    limit: int,
    expires_before: datetime | None = None,
) -> tuple[list[Any], str | None]:
    """One page and the cursor of the next (None at the end)."""
    if not actor.is_admin and account_id not in (None, actor.id):
        return [], None  # a customer never sees another account's list
    owner = account_id if actor.is_admin else actor.id
    params: dict[str, Any] = {"now": utcnow(), "limit": limit + 1}
    if owner is not None:
        params["owner"] = owner
    if cursor is not None:
        params["after_created"], params["after_id"] = decode_cursor(cursor)
    if expires_before is not None:
        params["expires_before"] = expires_before
    statement = list_statement(
        owner is not None, active, status, cursor is not None, expires_before is not None
    )
    rows = await db.all(statement, **params)
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1])
    return rows, None


# --- state changes --------------------------------------------------------------------------


async def set_active(
    db: Database, certificate_id: uuid.UUID, claims: TokenClaims, active: bool
) -> tuple[Any, bool]:
    """Hold (false) or release (true); no change, no event. A revoked or expired certificate
    has no hold to change: 409 whatever its flag says. Returns the certificate as it is now,
    and whether it changed."""
    try:
        async with db.transaction() as tx:
            row, actor = await _lock_visible(tx, certificate_id, claims)
            now = utcnow()
            before = status_of(row.revoked_at, row.not_after, row.is_active, now)
            if before in (Status.REVOKED, Status.EXPIRED):
                verb = "activated" if active else "deactivated"
                raise Conflict(f"a {before.value} certificate cannot be {verb}")
            if row.is_active == active:
                return row, False
            held_at = None if active else now
            changes = {"is_active": active, "held_at": held_at, "updated_at": now}
            cert = SimpleNamespace(**{**row._asdict(), **changes})
            updated = await tx.start(
                queries.SET_HOLD,
                certificate_id=cert.id,
                active=active,
                hold_started=held_at,
                changed_at=now,
            )
            if active:
                await _record(tx, cert, RELEASED, before, actor.id, now)
            else:
                await _record(tx, cert, HELD, before, actor.id, now, "certificateHold")
            if await updated.one() is None:
                raise _Overtaken  # a concurrent request changed it first (SQLite): undo ours
    except _Overtaken:
        # Its change is the answer: as if this request had come second, as it did.
        return await set_active(db, certificate_id, claims, active)
    return cert, True


class _Overtaken(Exception):
    """A concurrent request made the change this transaction was about to make."""


async def revoke(
    db: Database,
    certificate_id: uuid.UUID,
    claims: TokenClaims,
    reason: str,
    idempotency_key: str | None,
    fingerprint: str,
    ttl: timedelta,
) -> tuple[Any, bool]:
    """Revoke for good (a held certificate too); revoking twice is 409. Returns the
    certificate as it is now, and whether this request revoked it (not a replay)."""
    account_id = claims.account_id
    # A replay is looked for first, outside the transaction: it may delete an expired key.
    if await replay(db, account_id, "revoke", idempotency_key, fingerprint, ttl):
        row, _actor = await visible_to(db, certificate_id, claims)
        return row, False
    try:
        async with db.transaction() as tx:
            row, actor = await _lock_visible(tx, certificate_id, claims)
            if idempotency_key is not None:  # a twin may have committed while we waited
                where = {"account_id": account_id, "operation": "revoke", "key": idempotency_key}
                twin = await tx.one(queries.REMEMBERED, **where)
                if twin is not None and judge(twin, fingerprint, ttl) is None:
                    # Read again: without row locks (SQLite) `row` may predate the twin.
                    return await tx.one(queries.BY_ID, certificate_id=certificate_id), False
            now = utcnow()
            before = status_of(row.revoked_at, row.not_after, row.is_active, now)
            if before is Status.REVOKED:
                raise Conflict("the certificate is already revoked")
            changes = {"revoked_at": now, "revocation_reason": reason, "updated_at": now}
            cert = SimpleNamespace(**{**row._asdict(), **changes})
            updated = await tx.start(
                queries.SET_REVOKED, certificate_id=cert.id, at=now, reason=reason
            )
            await _remember(tx, account_id, "revoke", idempotency_key, fingerprint, cert.id, 200)
            await _record(tx, cert, REVOKED, before, actor.id, now, reason)
            if await updated.one() is None:  # revoked by a concurrent request (SQLite)
                raise Conflict("the certificate is already revoked")
    except (IntegrityError, Conflict):
        # A twin with the same Idempotency-Key got there first: its answer is ours (or 422
        # if the key came with another request).
        if await replay(db, account_id, "revoke", idempotency_key, fingerprint, ttl):
            row, _actor = await visible_to(db, certificate_id, claims)
            return row, False
        raise
    return cert, True


# A change: its history action and its event type.
RELEASED = ("released", EventType.CERTIFICATE_ACTIVATED)
HELD = ("held", EventType.CERTIFICATE_DEACTIVATED)
REVOKED = ("revoked", EventType.CERTIFICATE_REVOKED)


async def _record(
    tx: Transaction,
    cert: Any,
    change: tuple[str, EventType],
    before: Status | None,
    actor_id: uuid.UUID,
    now: datetime,
    reason: str | None = None,
    on_crl: bool = True,
) -> None:
    """What every change writes in its transaction: the history row, the event, and, when
    the CRL changes with it, the bump of the issuer's CRL revision (last: it locks a slot)."""
    action, event = change
    history = history_values(cert, action, before, actor_id, now, reason)
    await tx.execute(queries.INSERT_HISTORY, **history)
    data = certificate_event_data(cert, now)
    await tx.execute(queries.INSERT_EVENT, **event_values(event, cert.id, data))
    if on_crl:
        slot = crl_slot(cert.id)
        await tx.execute(queries.BUMP_CRL_REVISION, issuer=cert.issuer_id, counter=slot)


async def _remember(
    tx: Transaction,
    account_id: uuid.UUID,
    operation: str,
    key: str | None,
    fingerprint: str,
    certificate_id: uuid.UUID,
    status_code: int,
) -> None:
    """Note what a request with this Idempotency-Key produced, in its transaction."""
    if key is not None:
        values = remembered_values(
            account_id, operation, key, fingerprint, certificate_id, status_code
        )
        await tx.execute(queries.INSERT_IDEMPOTENCY_KEY, **values)
