"""`Idempotency-Key`: a retried request gets the first answer, never a second certificate.

A key is remembered per account and operation with a hash of the request and a reference to
the certificate it produced, never a copy of the response: a replay rebuilds the response
from the rows (the private key unsealed again).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from certificate_api.certificates import queries
from certificate_api.database import Database
from certificate_api.errors import Unprocessable
from schema.base import utcnow


def request_fingerprint(body: dict[str, Any]) -> str:
    """A stable hash of a request body, to tell a true retry from a reused key."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def judge(remembered: Any, fingerprint: str, ttl: timedelta) -> datetime | None:
    """None when the remembered key applies to this request; the cutoff when it expired.
    A key reused with another request body is a 422."""
    cutoff = utcnow() - ttl
    if remembered.created_at < cutoff:
        return cutoff
    if remembered.request_hash != fingerprint:
        raise Unprocessable.field(
            ["header", "Idempotency-Key"], "this key was already used with a different request body"
        )
    return None


async def replay(
    db: Database,
    account_id: uuid.UUID,
    operation: str,
    key: str | None,
    fingerprint: str,
    ttl: timedelta,
) -> Any:
    """The certificate (a `queries.BY_ID` row) a repeated `Idempotency-Key` produced, or None
    for a new key."""
    if key is None:
        return None
    where = {"account_id": account_id, "operation": operation, "key": key}
    remembered = await db.one(queries.REMEMBERED, **where)
    if remembered is None:
        return None
    cutoff = judge(remembered, fingerprint, ttl)
    if cutoff is not None:
        async with db.transaction() as tx:
            await tx.execute(queries.FORGET_EXPIRED, **where, cutoff=cutoff)
        return None
    return await db.one(queries.BY_ID, certificate_id=remembered.certificate_id)


def remembered_values(
    account_id: uuid.UUID,
    operation: str,
    key: str,
    fingerprint: str,
    cert_id: uuid.UUID,
    status_code: int,
) -> dict[str, Any]:
    """The columns of a remembered key."""
    return {
        "account_id": account_id,
        "operation": operation,
        "key": key,
        "request_hash": fingerprint,
        "certificate_id": cert_id,
        "status_code": status_code,
        "created_at": utcnow(),
    }
