"""`Idempotency-Key`: a retried request gets the first answer, never a second certificate.

A key is remembered per account and operation with a hash of the request and a reference to
the certificate it produced, never a copy of the response: a replay rebuilds the response
from the rows (the private key unsealed again).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core import queries
from core.errors import Invalid
from core.queries import CertificateRow, RememberedRow
from core.statements import Database, Transaction
from schema.base import utcnow


@dataclass(frozen=True)
class Idempotency:
    """A request's `Idempotency-Key` (None: not given), the fingerprint of what it asked,
    and how long keys are remembered."""

    key: str | None
    fingerprint: str
    ttl: timedelta

    @classmethod
    def of(cls, key: str | None, request: dict[str, Any], ttl: timedelta) -> Idempotency:
        """The idempotency of a request with these fields (hashed only when a key is given)."""
        return cls(key, request_fingerprint(request) if key is not None else "", ttl)


def request_fingerprint(body: dict[str, Any]) -> str:
    """A stable hash of a request, to tell a true retry from a reused key."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def judge(remembered: RememberedRow, fingerprint: str, ttl: timedelta) -> datetime | None:
    """None when the remembered key applies to this request; the cutoff when it expired.
    A key reused with another request is refused."""
    cutoff = utcnow() - ttl
    if remembered.created_at < cutoff:
        return cutoff
    if remembered.request_hash != fingerprint:
        raise Invalid.field(
            ["idempotency_key"], "this key was already used with a different request body"
        )
    return None


async def replay(
    db: Database, account_id: uuid.UUID, operation: str, idem: Idempotency
) -> CertificateRow | None:
    """The certificate a repeated `Idempotency-Key` produced, or None for a new key."""
    if idem.key is None:
        return None
    where = {"account_id": account_id, "operation": operation, "key": idem.key}
    remembered = await db.one(queries.REMEMBERED, **where)
    if remembered is None:
        return None
    cutoff = judge(remembered, idem.fingerprint, idem.ttl)
    if cutoff is not None:
        async with db.transaction() as tx:
            await tx.execute(queries.FORGET_EXPIRED, **where, cutoff=cutoff)
        return None
    return await db.one(queries.BY_ID, certificate_id=remembered.certificate_id)


async def twin_committed(
    tx: Transaction, account_id: uuid.UUID, operation: str, idem: Idempotency
) -> bool:
    """Whether a request with the same key committed while this one waited (its answer is
    then this one's); a key reused with another request is refused."""
    if idem.key is None:
        return False
    where = {"account_id": account_id, "operation": operation, "key": idem.key}
    twin = await tx.one(queries.REMEMBERED, **where)
    return twin is not None and judge(twin, idem.fingerprint, idem.ttl) is None


async def remember(
    tx: Transaction,
    account_id: uuid.UUID,
    operation: str,
    idem: Idempotency,
    result: tuple[uuid.UUID, int],
) -> None:
    """Note, in the request's transaction, what a request with this key produced: the
    certificate and the status code."""
    if idem.key is None:
        return
    certificate_id, status_code = result
    await tx.execute(
        queries.INSERT_IDEMPOTENCY_KEY,
        account_id=account_id,
        operation=operation,
        key=idem.key,
        request_hash=idem.fingerprint,
        certificate_id=certificate_id,
        status_code=status_code,
        created_at=utcnow(),
    )
