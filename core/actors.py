"""Who is acting: the account a verified credential names, checked against its row."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from core import queries
from core.errors import Unauthorized
from core.queries import AccountRow
from core.statements import Database
from schema.accounts import Role
from schema.tokens import TokenClaims


@dataclass(frozen=True)
class Actor:
    """An account allowed to act, and whether it is an admin."""

    id: uuid.UUID
    is_admin: bool


def actor_of(account: AccountRow | None, caller: TokenClaims) -> Actor:
    """The account check, wherever the account row was read (on its own, or joined to the
    certificate a route reads): a missing or deleted account, or a token older than the
    account's last sign-out or password change, is refused. Every check of
    the caller's credential against its account row belongs here."""
    if (
        account is None
        or account.deleted_at is not None
        or not caller.is_current(account.token_generation)
    ):
        raise Unauthorized()
    return Actor(caller.account_id, Role(account.role) is Role.ADMIN)


async def authorize(db: Database, caller: TokenClaims) -> Actor:
    """The account lookup: the actor a verified credential names, if its account may act."""
    return actor_of(await db.one(queries.ACCOUNT, account_id=caller.account_id), caller)
