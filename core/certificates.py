"""Reading certificates: one by id (the access rule of every operation on one), a page of
a list."""

from __future__ import annotations

import base64
import binascii
import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, not_, select, tuple_

from core import queries
from core.actors import Actor, actor_of, authorize
from core.errors import Invalid, NotFound
from core.queries import CertificateRow, VisibleRow
from core.statements import Database, Query, Transaction
from schema.base import utcnow
from schema.certificates import Certificate, Status
from schema.tokens import TokenClaims


def visible(row: VisibleRow | None, caller: TokenClaims) -> tuple[CertificateRow, Actor]:
    """The rule of every operation on one certificate: a deleted (or unknown) account is
    refused; a certificate that is missing or another account's is not found, unless the
    caller is an admin."""
    actor = actor_of(row.account if row is not None else None, caller)
    cert = row.certificate() if row is not None else None
    if cert is None or not (actor.is_admin or cert.account_id == actor.id):
        raise NotFound("no such certificate")
    return cert, actor


async def visible_to(
    db: Database, certificate_id: uuid.UUID, caller: TokenClaims
) -> tuple[CertificateRow, Actor]:
    """The certificate the caller may see, and who the caller is: one round trip, the hot
    path of fetch."""
    row = await db.one(queries.VISIBLE, certificate_id=certificate_id, account_id=caller.account_id)
    return visible(row, caller)


async def lock_visible(
    tx: Transaction, certificate_id: uuid.UUID, caller: TokenClaims
) -> tuple[CertificateRow, Actor]:
    """`visible_to` in a transaction, with the certificate row locked for a change."""
    row = await tx.one(
        queries.LOCK_VISIBLE, certificate_id=certificate_id, account_id=caller.account_id
    )
    if row is None:  # refused if the account is gone, else the certificate is not there
        actor_of(await tx.one(queries.ACCOUNT, account_id=caller.account_id), caller)
        raise NotFound("no such certificate")
    return visible(row, caller)


# --- lists ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListFilter:
    """Which certificates a list asks for; `account_id` is an admin's filter."""

    account_id: uuid.UUID | None = None
    active: bool | None = None
    status: Status | None = None
    expires_before: datetime | None = None  # only those whose notAfter is earlier


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


class Keyed(Protocol):
    """A row of a list paged by keyset on (created_at, id)."""

    @property
    def created_at(self) -> datetime: ...
    @property
    def id(self) -> uuid.UUID: ...


def encode_cursor(row: Keyed) -> str:
    """An opaque cursor after this row (a certificate, a domain authorization)."""
    raw = f"{row.created_at.astimezone(UTC).isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor points after; invalid when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, ident = raw.partition("|")
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is None:
            raise ValueError("naive")
        return moment, uuid.UUID(ident)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise Invalid.field(("cursor",), "not a cursor from this API") from None


@functools.cache
def list_statement(
    by_owner: bool, active: bool | None, status: Status | None, after: bool, expiring: bool = False
) -> Query[CertificateRow]:
    """Newest first, by keyset on (created_at, id), so pages stay stable under inserts.

    One statement per combination of filters (a few dozen), each built and compiled once;
    the values are parameters: owner, now, expires_before, after_created, after_id, limit.
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
        expires_before = bindparam("expires_before", type_=Certificate.not_after.type)
        query = query.where(Certificate.not_after < expires_before)
    if after:
        created = bindparam("after_created", type_=Certificate.created_at.type)
        ident = bindparam("after_id", type_=Certificate.id.type)
        query = query.where(tuple_(Certificate.created_at, Certificate.id) < tuple_(created, ident))
    ordered = query.order_by(Certificate.created_at.desc(), Certificate.id.desc())
    return Query(ordered.limit(bindparam("limit")), CertificateRow)


async def list_page(
    db: Database, caller: TokenClaims, wanted: ListFilter, cursor: str | None, limit: int
) -> tuple[list[CertificateRow], str | None]:
    """One page of the caller's certificates (an admin's: anyone's), newest first, and the
    cursor of the next page (None at the end)."""
    actor = await authorize(db, caller)
    if not actor.is_admin and wanted.account_id not in (None, actor.id):
        return [], None  # a customer never sees another account's list
    owner = wanted.account_id if actor.is_admin else actor.id
    params: dict[str, Any] = {"now": utcnow(), "limit": limit + 1}
    if owner is not None:
        params["owner"] = owner
    if cursor is not None:
        params["after_created"], params["after_id"] = decode_cursor(cursor)
    expiring = wanted.expires_before is not None
    if expiring:
        params["expires_before"] = wanted.expires_before
    statement = list_statement(
        owner is not None, wanted.active, wanted.status, cursor is not None, expiring
    )
    rows = await db.all(statement, **params)
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1])
    return rows, None
