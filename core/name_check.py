"""The check at issuance: every name of a request passes the CA's policy and is covered by a
valid domain authorization of the account, before anything is signed.

The covering authorizations are read in the round trip that already checks the account
(`NameRules.authorize`, which also counts the issuance rate: `core.rates`), and
share-locked again in the transaction that stores the certificate (`Held`), so one deleted
or expiring meanwhile stops the issuance: its DELETE waits for the lock, or the insert sees
it gone.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    FromClause,
    Integer,
    String,
    Uuid,
    and_,
    any_,
    bindparam,
    cast,
    func,
    null,
    select,
    true,
)

from core import queries
from core.actors import Actor, actor_of
from core.errors import FieldError, Forbidden
from core.orders import IssueOrder, IssueRequest
from core.policy import NamePolicy
from core.queries import AccountRow
from core.rates import HitRow, IssuanceRate, hit_query
from core.statements import Database, Query
from pki import names
from schema.accounts import Account
from schema.base import utcnow
from schema.domains import DomainAuthorization, DomainStatus
from schema.rates import hit_statement
from schema.settings import CommonSettings
from schema.tokens import TokenClaims

log = logging.getLogger(__name__)
DA = DomainAuthorization
NOT_AUTHORIZED = "not authorized"


@dataclass(frozen=True)
class Grant:
    """A valid authorization of the account that may cover some requested name."""

    id: uuid.UUID
    name: str
    include_subdomains: bool

    def covers(self, name: str) -> bool:
        """The exact name, or, with include_subdomains, any name under it (a wildcard
        included); a wildcard needs include_subdomains even on its own parent."""
        if name == self.name and not name.startswith("*."):
            return True
        return self.include_subdomains and (
            name.removeprefix("*.") == self.name or name.endswith("." + self.name)
        )


def candidates(name: str) -> list[str]:
    """The authorization names that could cover a name: itself and each parent (for
    `*.a.example.com`: `a.example.com`, `example.com`, `com`)."""
    labels = name.removeprefix("*.").split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def requested_candidates(
    common_name: str, dns_names: Iterable[str], ips: Iterable[str]
) -> list[str]:
    """Every candidate authorization name of a request body, read before the body is
    validated (an invalid name adds nothing; it is refused with 422 later)."""
    found: dict[str, None] = {}
    for value in (common_name, *dns_names, *ips):
        try:
            found.update(dict.fromkeys(_candidates_of(value)))
        except (names.InvalidName, ValueError):
            continue
    return list(found)


def _candidates_of(value: str) -> list[str]:
    """The candidates of what `prepare` will make of a name (the parser's answers are cached,
    so the second parse is a look-up); an invalid one adds nothing and is refused later."""
    if names.is_ip(value):
        return [str(names.parse_ip(value))]  # an address is covered by itself only
    return candidates(names.parse_dns_name(value))


def _one_of(column: Any, param: str, type_: Any, dialect: str) -> ColumnElement[bool]:
    # PostgreSQL: one array parameter (`= ANY`), so the statement compiles once; SQLite has
    # no arrays, and runs SQLAlchemy's expanding IN instead.
    if dialect == "postgresql":
        return column == any_(bindparam(param, type_=ARRAY(type_)))  # type: ignore[no-any-return]
    return column.in_(bindparam(param, expanding=True))  # type: ignore[no-any-return]


def _valid_now() -> ColumnElement[bool]:
    return and_(
        DA.status == DomainStatus.VALID.value,
        DA.expires_at > bindparam("now", type_=DA.expires_at.type),
    )


class CoveringRow(NamedTuple):
    """The caller's account, this issuance's rank in the account's minute (PostgreSQL; None
    where it is counted apart), and one valid authorization of it that may cover a
    requested name (outer join: its columns are None when there is none)."""

    role: str
    deleted_at: datetime | None
    token_generation: int
    hits: int | None
    id: uuid.UUID | None
    name: str | None
    include_subdomains: bool | None

    @property
    def account(self) -> AccountRow:
        """The caller's account."""
        return AccountRow(self.role, self.deleted_at, self.token_generation)


class HeldRow(NamedTuple):
    """How many of the authorizations an issuance relies on are still there and valid."""

    held: int


def _statements(dialect: str) -> tuple[Query[CoveringRow], Query[HeldRow]]:
    if dialect == "postgresql":
        # The count is an INSERT ... RETURNING in a WITH: run once, whatever the join makes.
        hit = hit_statement(dialect).cte("hit")
        hits: ColumnElement[Any] = hit.c.hits
        account: FromClause = Account.__table__.outerjoin(hit, true())
    else:
        hits, account = cast(null(), Integer), Account.__table__
    covering = (
        select(*queries.ACCOUNT_STATE, hits.label("hits"), DA.id, DA.name, DA.include_subdomains)
        .select_from(account)
        .outerjoin(
            DA.__table__,
            and_(
                DA.account_id == Account.id,
                _valid_now(),
                _one_of(DA.name, "candidates", String(), dialect),
            ),
        )
        .where(Account.id == bindparam("account_id"))
    )
    still_valid = (
        select(DA.id)
        .where(_one_of(DA.id, "ids", Uuid(), dialect), _valid_now())
        .with_for_update(read=True)
        .subquery()
    )
    held = select(func.count().label("held")).select_from(still_valid)
    return Query(covering, CoveringRow), Query(held, HeldRow)


@dataclass(frozen=True)
class Held:
    """The authorizations an issuance relies on, to lock and re-check in its transaction."""

    query: Query[HeldRow]
    ids: list[uuid.UUID]

    def params(self) -> dict[str, Any]:
        """The statement's parameters, valid as of now (the insert's time, not the check's)."""
        return {"ids": self.ids, "now": utcnow()}

    def holds(self, row: HeldRow | None) -> bool:
        """Whether every one of them was still there and valid."""
        return row is not None and row.held == len(self.ids)

    @staticmethod
    def gone() -> Forbidden:
        """The answer when one was deleted or expired while the request was signed."""
        return Forbidden("a domain authorization this request relied on was deleted or expired")


class NameRules:
    """The policy and the authorization rule, built once per process from settings."""

    def __init__(self, settings: CommonSettings, dialect: str) -> None:
        self.policy = NamePolicy.parse(settings.name_policy_allow, settings.name_policy_deny)
        self.required = settings.name_authorization == "required"
        self.covering, self.still_valid = _statements(dialect)
        # Where the count cannot ride on the covering statement, it is a statement of its own.
        self.hit: Query[HitRow] | None = None if dialect == "postgresql" else hit_query(dialect)
        if not self.required:
            log.warning(
                "NAME_AUTHORIZATION=open: any account may get a certificate for any name the "
                "policy allows; for closed labs only"
            )

    async def authorize(
        self, db: Database, caller: TokenClaims, request: IssueRequest, rate: IssuanceRate
    ) -> tuple[Actor, list[Grant]]:
        """The caller, judged by its account row (`actor_of`), and the valid authorizations
        of theirs that may cover the request's names, with this call counted against the
        account's issuance `rate` (`RateLimited` past it): one round trip on PostgreSQL."""
        wanted = (
            requested_candidates(request.common_name, request.dns_names, request.ip_addresses)
            if self.required
            else []
        )
        now = utcnow()
        counting = rate.params(caller.account_id, now)
        counted = await db.one(self.hit, **counting) if self.hit is not None else None
        rows = await db.all(
            self.covering,
            account_id=caller.account_id,
            candidates=wanted,
            now=now,
            **(counting if self.hit is None else {}),
        )
        actor = actor_of(rows[0].account if rows else None, caller)
        hits = counted.hits if counted is not None else rows[0].hits
        rate.check(hits or 0, now)
        grants = [
            Grant(r.id, r.name, bool(r.include_subdomains))
            for r in rows
            if r.id is not None and r.name is not None
        ]
        return actor, grants

    def check(self, order: IssueOrder, grants: list[Grant]) -> Held | None:
        """Forbidden, naming each refused name; otherwise what to re-check at the insert
        (None when nothing is: NAME_AUTHORIZATION=open). The names are a validated order's
        (the common name among them, as in the SANs)."""
        errors: list[FieldError] = []
        used: dict[uuid.UUID, None] = {}
        for is_ip, name in _located(order.dns_names, order.ip_addresses):
            address = ipaddress.ip_address(name) if is_ip else None
            field = (
                "common_name"
                if name == order.common_name
                else "ip_addresses"
                if is_ip
                else "dns_names"
            )
            refusal = (
                self.policy.refusal_ip(address)
                if address is not None
                else self.policy.refusal_dns(name)
            )
            if refusal is None and self.required:
                grant = next((g for g in grants if g.covers(name)), None)
                if grant is None:
                    refusal = NOT_AUTHORIZED
                else:
                    used[grant.id] = None
            if refusal is not None:
                errors.append(FieldError((field, name), refusal))
        if errors:
            refused = ", ".join(str(err.field[1]) for err in errors)
            raise Forbidden(f"not allowed to have a certificate for: {refused}", errors)
        if not self.required:
            return None
        return Held(self.still_valid, list(used))


def _located(
    dns_names: Sequence[str], ip_addresses: Sequence[names.IpAddress]
) -> list[tuple[bool, str]]:
    return [(False, n) for n in dns_names] + [(True, str(a)) for a in ip_addresses]
