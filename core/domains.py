"""Domain authorizations: create, ask for validation, read, list, delete, grant. No HTTP here.

An authorization names a DNS name (with `include_subdomains`, everything under it too) or
an IP address. It is `pending` until a worker has checked the challenge its owner asked
for (worker/validation.py), then `valid` until `expires_at`, or `invalid` with `error`.
Operators grant one without a challenge (`grant`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, Table, and_, bindparam, delete, insert, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certificate_api.database import Database, Transaction
from certificate_api.errors import Conflict, Forbidden, NotFound, Unauthorized, Unprocessable
from certificate_api.pki import names
from core import validation
from core.policy import NamePolicy, is_public_suffix
from schema.accounts import Account, Role
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
    loc = ["body", "name"]
    if names.is_ip(name):
        if include_subdomains:
            raise Unprocessable.field(
                ["body", "include_subdomains"], "an IP address has no subdomains"
            )
        address = names.parse_ip(name)
        if policy.refusal_ip(address):
            raise _refused(str(address))
        return Subject(str(address), False, True)
    try:
        normal = names.normalize_dns_name(name)
    except names.InvalidName as exc:
        raise Unprocessable.field(loc, str(exc)) from None
    if normal.startswith("*."):
        raise Unprocessable.field(loc, "no wildcard: use include_subdomains on its parent")
    if is_public_suffix(normal) or policy.refusal_dns(normal):
        raise _refused(normal)
    return Subject(normal, include_subdomains, False)


def _refused(name: str) -> Forbidden:
    return Forbidden(
        f"{name} is denied by the CA's policy",
        errors=[{"loc": ["body", "name", name], "msg": "denied by policy"}],
    )


# --- statements -----------------------------------------------------------------------------

_TABLE: Table = DA.__table__  # type: ignore[assignment]
_AUTHZ = tuple(_TABLE.columns)
_NOW = bindparam("now", type_=DA.expires_at.type)
_LIVE = (DomainStatus.PENDING.value, DomainStatus.VALID.value)
# Written out, not IN (...): an IN list compiles to a placeholder expanded per execution,
# which the once-compiled statements of certificate_api/database.py do not do.
_IS_LIVE = or_(DA.status == _LIVE[0], DA.status == _LIVE[1])

LIVE_TWIN = select(*_AUTHZ).where(
    DA.account_id == bindparam("account_id"),
    DA.name == bindparam("name"),
    DA.include_subdomains == bindparam("include_subdomains"),
    _IS_LIVE,
)
MARK_EXPIRED = (
    update(DA)
    .where(DA.id == bindparam("authorization_id"))
    .values(status=DomainStatus.EXPIRED.value)
)
INSERT = insert(_TABLE).values({c.key: bindparam(c.key, type_=c.type) for c in _AUTHZ})
# One round trip: is the caller's account there (and admin?), and the authorization.
VISIBLE = (
    select(Account.role, Account.deleted_at, *_AUTHZ)
    .select_from(Account)
    .outerjoin(_TABLE, DA.id == bindparam("authorization_id"))
    .where(Account.id == bindparam("account_id"))
)
# The same with the authorization locked for a change: an inner join (a row lock cannot sit
# on the nullable side of an outer join); no row means "ask VISIBLE why".
LOCK_VISIBLE = (
    select(Account.role, Account.deleted_at, *_AUTHZ)
    .select_from(_TABLE)
    .join(Account, Account.id == bindparam("account_id"))
    .where(DA.id == bindparam("authorization_id"))
    .with_for_update(of=DA)
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
    db: Database, claims: TokenClaims, wanted: Subject, token: str | None = None
) -> tuple[Any, bool]:
    """A pending authorization for the caller, or the live (pending or valid) one it already
    has for the same name and scope; returns the row and whether it is new."""
    now = utcnow()
    values = {
        "id": uuid.uuid4(),
        "account_id": claims.account_id,
        "name": wanted.name,
        "include_subdomains": wanted.include_subdomains,
        "status": DomainStatus.PENDING.value,
        "token": token or validation.new_token(),
        "expires_at": now + timedelta(days=PENDING_DAYS),
        "error": None,
        "created_at": now,
        "validated_at": None,
        "validation_type": None,
        "validation_requested_at": None,
        "validation_leased_until": None,
        "validation_attempts": 0,
    }
    twin_of = {
        "account_id": claims.account_id,
        "name": wanted.name,
        "include_subdomains": wanted.include_subdomains,
    }
    try:
        async with db.transaction() as tx:
            row = await tx.one(VISIBLE, authorization_id=None, account_id=claims.account_id)
            if row is None or row.deleted_at is not None:
                raise Unauthorized()
            twin = await tx.one(LIVE_TWIN, **twin_of)
            if twin is not None:
                if shown_status(twin.status, twin.expires_at, now) is not DomainStatus.EXPIRED:
                    return twin, False
                await tx.execute(MARK_EXPIRED, authorization_id=twin.id)
            await tx.execute(INSERT, **values)
    except IntegrityError:
        twin = await db.one(LIVE_TWIN, **twin_of)  # a concurrent twin committed first
        if twin is None:
            raise
        return twin, False
    return Row(values), True


class Row(dict[str, Any]):
    """A row built here, read with attribute access like the database's."""

    def __getattr__(self, key: str) -> Any:
        return self[key]


def _visible(row: Any, claims: TokenClaims, owner_only: bool = False) -> Any:
    if row is None or row.deleted_at is not None:
        raise Unauthorized()
    mine = row.account_id == claims.account_id
    if row.id is None or not (mine or (Role(row.role) is Role.ADMIN and not owner_only)):
        raise NotFound("no such domain authorization")
    return row


async def _lock(tx: Transaction, authorization_id: uuid.UUID, claims: TokenClaims) -> Any:
    where = {"authorization_id": authorization_id, "account_id": claims.account_id}
    row = await tx.one(LOCK_VISIBLE, **where)
    if row is None:  # the account alone: 401 if it is gone, else 404
        row = await tx.one(VISIBLE, **{**where, "authorization_id": None})
    return row


async def get(db: Database, claims: TokenClaims, authorization_id: uuid.UUID) -> Any:
    """The authorization, to its owner or an admin; 404 otherwise."""
    row = await db.one(VISIBLE, authorization_id=authorization_id, account_id=claims.account_id)
    return _visible(row, claims)


async def request_validation(
    db: Database, claims: TokenClaims, authorization_id: uuid.UUID, kind: ChallengeType
) -> tuple[Any, bool]:
    """Record (durably) that the owner asks for a check; a worker does it. Returns the row
    and whether a check is now asked for (False: it was valid already, unchanged)."""
    now = utcnow()
    async with db.transaction() as tx:
        row = _visible(await _lock(tx, authorization_id, claims), claims, owner_only=True)
        status = shown_status(row.status, row.expires_at, now)
        if status is DomainStatus.VALID:
            return row, False
        offered = subject_of(row).challenges()
        if kind not in offered:
            allowed = ", ".join(offered)
            raise Unprocessable.field(["body", "type"], f"this authorization offers {allowed} only")
        if status is not DomainStatus.PENDING:
            raise Conflict(f"the authorization is {status.value}; create a new one")
        if row.validation_type is not None:
            return row, True  # already asked for: the worker has it
        await tx.execute(
            REQUEST_VALIDATION, authorization_id=row.id, validation_type=kind.value, now=now
        )
    changed = {"validation_type": kind.value, "validation_requested_at": now}
    return Row({**row._asdict(), **changed}), True


async def remove(db: Database, claims: TokenClaims, authorization_id: uuid.UUID) -> None:
    """Delete it (owner or admin): from the commit on it covers no new certificate.
    Issuance share-locks the authorizations it relies on, so this waits for those."""
    async with db.transaction() as tx:
        _visible(await _lock(tx, authorization_id, claims), claims)
        await tx.execute(DELETE, authorization_id=authorization_id)


def subject_of(row: Any) -> Subject:
    """The subject of a stored authorization."""
    return Subject(row.name, row.include_subdomains, names.is_ip(row.name))


# --- listing -----------------------------------------------------------------------------------


def encode_cursor(row: Any) -> str:
    """An opaque cursor after this row."""
    raw = f"{row.created_at.isoformat()}|{row.id}".encode()
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
def list_statement(by_owner: bool, after: bool) -> Select[Any]:
    """Newest first, by keyset on (created_at, id): stable under concurrent inserts."""
    query = select(*_AUTHZ)
    if by_owner:
        query = query.where(DA.account_id == bindparam("owner"))
    if after:
        created = bindparam("after_created", type_=DA.created_at.type)
        ident = bindparam("after_id", type_=DA.id.type)
        query = query.where(tuple_(DA.created_at, DA.id) < tuple_(created, ident))
    return query.order_by(DA.created_at.desc(), DA.id.desc()).limit(bindparam("limit"))


ACCOUNT = select(Account.role, Account.deleted_at).where(Account.id == bindparam("account_id"))


async def list_page(
    db: Database,
    claims: TokenClaims,
    account_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    """One page of the caller's authorizations (an admin's: anyone's, or one account's)."""
    me = await db.one(ACCOUNT, account_id=claims.account_id)
    if me is None or me.deleted_at is not None:
        raise Unauthorized()
    is_admin = Role(me.role) is Role.ADMIN
    if not is_admin and account_id not in (None, claims.account_id):
        return [], None  # a customer never sees another account's list
    owner = account_id if is_admin else claims.account_id
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
