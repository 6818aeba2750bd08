"""Domain authorizations: create, ask for validation, read, list, delete, grant. No HTTP here.

An authorization names a DNS name (with `include_subdomains`, everything under it too) or
an IP address. It is `pending` until a worker has checked the challenge its owner asked
for (worker/validation.py), then `valid` until `expires_at`, or `invalid` with `error`.
Operators grant one without a challenge (`grant`).
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Table, and_, bindparam, delete, insert, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import queries, validation
from core.actors import Actor, actor_of, authorize
from core.certificates import decode_cursor, encode_cursor
from core.errors import Conflict, FieldError, Forbidden, Invalid, NotFound
from core.policy import NamePolicy, is_public_suffix
from core.statements import Database, Query, Transaction
from pki import names
from schema.accounts import Account
from schema.base import utcnow
from schema.domains import ChallengeType, DomainAuthorization, DomainStatus, shown_status
from schema.tokens import TokenClaims

# A pending authorization not validated within this is expired (as ACME servers do).
PENDING_DAYS = 7
DA = DomainAuthorization


@dataclass(frozen=True)
class Subject:
    """What an authorization is for: a normalized DNS name or IP address, and its scope."""

    name: str
    include_subdomains: bool
    is_ip: bool

    def challenges(self) -> tuple[ChallengeType, ...]:
        """The challenge types that prove it: http-01 for one host or address, dns-01 for
        a DNS name (the only one for `include_subdomains`, so the only way to a wildcard)."""
        if self.is_ip:
            return (ChallengeType.HTTP_01,)
        if self.include_subdomains:
            return (ChallengeType.DNS_01,)
        return (ChallengeType.HTTP_01, ChallengeType.DNS_01)


def subject(name: str, include_subdomains: bool, policy: NamePolicy) -> Subject:
    """Validate what a customer or operator asks to be authorized for: a DNS name without
    wildcard, or an IP address (never with subdomains); 422 naming the field, or 403 when
    the CA's policy refuses it (no point proving a name that can never be certified)."""
    if names.is_ip(name):
        if include_subdomains:
            raise Invalid.field(("include_subdomains",), "an IP address has no subdomains")
        address = names.parse_ip(name)
        if policy.refusal_ip(address):
            raise _refused(str(address))
        return Subject(str(address), False, True)
    try:
        normal = names.parse_dns_name(name)
    except names.InvalidName as exc:
        raise Invalid.field(("name",), str(exc)) from None
    if normal.startswith("*."):
        raise Invalid.field(("name",), "no wildcard: use include_subdomains on its parent")
    if is_public_suffix(normal) or policy.refusal_dns(normal):
        raise _refused(normal)
    return Subject(normal, include_subdomains, False)


def _refused(name: str) -> Forbidden:
    return Forbidden(
        f"{name} is denied by the CA's policy", [FieldError(("name", name), "denied by policy")]
    )


# --- statements -----------------------------------------------------------------------------

_TABLE: Table = DA.__table__  # type: ignore[assignment]
_AUTHZ = tuple(_TABLE.columns)
_NOW = bindparam("now", type_=DA.expires_at.type)
_LIVE = (DomainStatus.PENDING.value, DomainStatus.VALID.value)
# Written out, not IN (...): an IN list compiles to a placeholder expanded per execution,
# which the once-compiled statements of the async statement layer do not do.
_IS_LIVE = or_(DA.status == _LIVE[0], DA.status == _LIVE[1])


class AuthorizationRow(NamedTuple):
    """A domain authorization's columns."""

    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    include_subdomains: bool
    status: str
    token: str
    expires_at: datetime
    error: str | None
    created_at: datetime
    validated_at: datetime | None
    validation_type: str | None
    validation_requested_at: datetime | None
    validation_leased_until: datetime | None
    validation_attempts: int


class VisibleAuthorizationRow(NamedTuple):
    """The caller's account and, when there is one, the authorization asked for (outer
    join: its columns are None when none matched)."""

    role: str
    deleted_at: datetime | None
    token_generation: int
    id: uuid.UUID | None
    account_id: uuid.UUID | None
    name: str | None
    include_subdomains: bool | None
    status: str | None
    token: str | None
    expires_at: datetime | None
    error: str | None
    created_at: datetime | None
    validated_at: datetime | None
    validation_type: str | None
    validation_requested_at: datetime | None
    validation_leased_until: datetime | None
    validation_attempts: int | None

    @property
    def account(self) -> queries.AccountRow:
        """The caller's account."""
        return queries.AccountRow(self.role, self.deleted_at, self.token_generation)

    def authorization(self) -> AuthorizationRow | None:
        """The authorization, or None when none matched."""
        if self.id is None:
            return None
        return AuthorizationRow._make(self[len(queries.ACCOUNT_STATE) :])


LIVE_TWIN = Query(
    select(*_AUTHZ).where(
        DA.account_id == bindparam("account_id"),
        DA.name == bindparam("name"),
        DA.include_subdomains == bindparam("include_subdomains"),
        _IS_LIVE,
    ),
    AuthorizationRow,
)
MARK_EXPIRED = (
    update(DA)
    .where(DA.id == bindparam("authorization_id"))
    .values(status=DomainStatus.EXPIRED.value)
)
INSERT = insert(_TABLE).values({c.key: bindparam(c.key, type_=c.type) for c in _AUTHZ})
# One round trip: the caller's account (judged by `actor_of`), and the authorization.
VISIBLE = Query(
    select(*queries.ACCOUNT_STATE, *_AUTHZ)
    .select_from(Account)
    .outerjoin(_TABLE, DA.id == bindparam("authorization_id"))
    .where(Account.id == bindparam("account_id")),
    VisibleAuthorizationRow,
)
# The same with the authorization locked for a change: an inner join (a row lock cannot sit
# on the nullable side of an outer join); no row means "ask the account alone why".
LOCK_VISIBLE = Query(
    select(*queries.ACCOUNT_STATE, *_AUTHZ)
    .select_from(_TABLE)
    .join(Account, Account.id == bindparam("account_id"))
    .where(DA.id == bindparam("authorization_id"))
    .with_for_update(of=DA),
    VisibleAuthorizationRow,
)
REQUEST_VALIDATION = (
    update(DA)
    .where(DA.id == bindparam("authorization_id"), DA.status == DomainStatus.PENDING.value)
    .values(
        validation_type=bindparam("validation_type", type_=DA.validation_type.type),
        validation_requested_at=_NOW,
        validation_leased_until=None,
    )
)
DELETE = delete(DA).where(DA.id == bindparam("authorization_id"))


# --- the REST door's operations ---------------------------------------------------------------


async def create(
    db: Database, caller: TokenClaims, wanted: Subject, token: str | None = None
) -> tuple[AuthorizationRow, bool]:
    """A pending authorization for the caller, or the live (pending or valid) one it already
    has for the same name and scope; returns the row and whether it is new."""
    now = utcnow()
    made = AuthorizationRow(
        id=uuid.uuid4(),
        account_id=caller.account_id,
        name=wanted.name,
        include_subdomains=wanted.include_subdomains,
        status=DomainStatus.PENDING.value,
        token=token or validation.new_token(),
        expires_at=now + timedelta(days=PENDING_DAYS),
        error=None,
        created_at=now,
        validated_at=None,
        validation_type=None,
        validation_requested_at=None,
        validation_leased_until=None,
        validation_attempts=0,
    )
    twin_of = {
        "account_id": caller.account_id,
        "name": wanted.name,
        "include_subdomains": wanted.include_subdomains,
    }
    try:
        async with db.transaction() as tx:
            actor_of(await tx.one(queries.ACCOUNT, account_id=caller.account_id), caller)
            twin = await tx.one(LIVE_TWIN, **twin_of)
            if twin is not None:
                if shown_status(twin.status, twin.expires_at, now) is not DomainStatus.EXPIRED:
                    return twin, False
                await tx.execute(MARK_EXPIRED, authorization_id=twin.id)
            await tx.execute(INSERT, **made._asdict())
    except IntegrityError:
        twin = await db.one(LIVE_TWIN, **twin_of)  # a concurrent twin committed first
        if twin is None:
            raise
        return twin, False
    return made, True


def _visible(
    row: VisibleAuthorizationRow | None, caller: TokenClaims, owner_only: bool = False
) -> AuthorizationRow:
    """The rule of every operation on one authorization: the caller's account is judged by
    `actor_of`; one that is missing or another account's is not found, unless the caller is
    an admin (and the operation is not the owner's only)."""
    actor: Actor = actor_of(row.account if row is not None else None, caller)
    authz = row.authorization() if row is not None else None
    if authz is None or not (authz.account_id == actor.id or (actor.is_admin and not owner_only)):
        raise NotFound("no such domain authorization")
    return authz


async def _lock(
    tx: Transaction, authorization_id: uuid.UUID, caller: TokenClaims, owner_only: bool = False
) -> AuthorizationRow:
    """`_visible` in a transaction, with the authorization row locked for a change."""
    row = await tx.one(
        LOCK_VISIBLE, authorization_id=authorization_id, account_id=caller.account_id
    )
    if row is None:  # refused if the account is gone, else the authorization is not there
        actor_of(await tx.one(queries.ACCOUNT, account_id=caller.account_id), caller)
        raise NotFound("no such domain authorization")
    return _visible(row, caller, owner_only)


async def get(db: Database, caller: TokenClaims, authorization_id: uuid.UUID) -> AuthorizationRow:
    """The authorization, to its owner or an admin; not found otherwise."""
    row = await db.one(VISIBLE, authorization_id=authorization_id, account_id=caller.account_id)
    return _visible(row, caller)


async def request_validation(
    db: Database, caller: TokenClaims, authorization_id: uuid.UUID, kind: ChallengeType
) -> tuple[AuthorizationRow, bool]:
    """Record (durably) that the owner asks for a check; a worker does it. Returns the row
    and whether a check is now asked for (False: it was valid already, unchanged)."""
    now = utcnow()
    async with db.transaction() as tx:
        row = await _lock(tx, authorization_id, caller, owner_only=True)
        status = shown_status(row.status, row.expires_at, now)
        if status is DomainStatus.VALID:
            return row, False
        offered = subject_of(row).challenges()
        if kind not in offered:
            allowed = ", ".join(offered)
            raise Invalid.field(("type",), f"this authorization offers {allowed} only")
        if status is not DomainStatus.PENDING:
            raise Conflict(f"the authorization is {status.value}; create a new one")
        if row.validation_type is not None:
            return row, True  # already asked for: the worker has it
        await tx.execute(
            REQUEST_VALIDATION, authorization_id=row.id, validation_type=kind.value, now=now
        )
    return row._replace(validation_type=kind.value, validation_requested_at=now), True


async def remove(db: Database, caller: TokenClaims, authorization_id: uuid.UUID) -> None:
    """Delete it (owner or admin): from the commit on it covers no new certificate.
    Issuance share-locks the authorizations it relies on, so this waits for those."""
    async with db.transaction() as tx:
        await _lock(tx, authorization_id, caller)
        await tx.execute(DELETE, authorization_id=authorization_id)


def subject_of(row: AuthorizationRow) -> Subject:
    """The subject of a stored authorization."""
    return Subject(row.name, row.include_subdomains, names.is_ip(row.name))


# --- listing -----------------------------------------------------------------------------------


@functools.cache
def list_statement(by_owner: bool, after: bool) -> Query[AuthorizationRow]:
    """Newest first, by keyset on (created_at, id): stable under concurrent inserts. The
    cursor is the certificate list's (`core.certificates`): the same keyset."""
    query = select(*_AUTHZ)
    if by_owner:
        query = query.where(DA.account_id == bindparam("owner"))
    if after:
        created = bindparam("after_created", type_=DA.created_at.type)
        ident = bindparam("after_id", type_=DA.id.type)
        query = query.where(tuple_(DA.created_at, DA.id) < tuple_(created, ident))
    ordered = query.order_by(DA.created_at.desc(), DA.id.desc())
    return Query(ordered.limit(bindparam("limit")), AuthorizationRow)


async def list_page(
    db: Database,
    caller: TokenClaims,
    account_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[AuthorizationRow], str | None]:
    """One page of the caller's authorizations (an admin's: anyone's, or one account's)."""
    actor = await authorize(db, caller)
    if not actor.is_admin and account_id not in (None, actor.id):
        return [], None  # a customer never sees another account's list
    owner = account_id if actor.is_admin else actor.id
    params: dict[str, Any] = {"limit": limit + 1}
    if owner is not None:
        params["owner"] = owner
    if cursor is not None:
        params["after_created"], params["after_id"] = decode_cursor(cursor)
    rows = await db.all(list_statement(owner is not None, cursor is not None), **params)
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1])
    return rows, None


# --- operators -------------------------------------------------------------------------------


def grant(
    session: Session, account: Account, wanted: Subject, days: int, now: datetime | None = None
) -> DomainAuthorization:
    """A valid authorization without a challenge (an operator's word), replacing a live one
    of the same name and scope. The caller commits."""
    now = now or utcnow()
    session.execute(
        update(DA)
        .where(
            and_(
                DA.account_id == account.id,
                DA.name == wanted.name,
                DA.include_subdomains == wanted.include_subdomains,
                DA.status.in_(_LIVE),
            )
        )
        .values(status=DomainStatus.EXPIRED.value)
    )
    authorization = DA(
        account_id=account.id,
        name=wanted.name,
        include_subdomains=wanted.include_subdomains,
        status=DomainStatus.VALID.value,
        token=validation.new_token(),
        expires_at=now + timedelta(days=days),
        created_at=now,
        validated_at=now,
    )
    session.add(authorization)
    session.flush()
    return authorization
