"""`Idempotency-Key`: a retried request gets the first answer, never a second certificate.

A key is remembered per account and operation with a hash of the request and a reference to
the certificate it produced, never a copy of the response: a replay rebuilds the response
from the rows (the private key unsealed again).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from certificate_api.errors import Unprocessable
from schema.base import utcnow
from schema.certificates import Certificate, IdempotencyKey


def request_fingerprint(body: dict[str, Any]) -> str:
    """A stable hash of a request body, to tell a true retry from a reused key."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def replay(
    session: Session,
    account_id: uuid.UUID,
    operation: str,
    key: str | None,
    fingerprint: str,
    ttl: timedelta,
) -> Certificate | None:
    """The certificate a repeated `Idempotency-Key` produced, or None for a new key."""
    if key is None:
        return None
    remembered = session.get(IdempotencyKey, (account_id, operation, key))
    if remembered is None:
        return None
    cutoff = utcnow() - ttl
    if remembered.created_at < cutoff:
        # Expired: the key may be used afresh. A plain DELETE (two requests may race to it),
        # committed now, not with the issuance: signing happens outside a transaction.
        session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.account_id == account_id,
                IdempotencyKey.operation == operation,
                IdempotencyKey.key == key,
                IdempotencyKey.created_at < cutoff,
            )
        )
        session.commit()
        session.expunge(remembered)
        return None
    if remembered.request_hash != fingerprint:
        raise Unprocessable.field(
            ["header", "Idempotency-Key"], "this key was already used with a different request body"
        )
    cert = session.get(Certificate, remembered.certificate_id)
    assert cert is not None
    return cert


def remember(
    session: Session,
    account_id: uuid.UUID,
    operation: str,
    key: str | None,
    fingerprint: str,
    cert_id: uuid.UUID,
    status_code: int,
) -> None:
    """Note what a request with this key produced, in the transaction that produced it."""
    if key is not None:
        session.add(
            IdempotencyKey(
                account_id=account_id,
                operation=operation,
                key=key,
                request_hash=fingerprint,
                certificate_id=cert_id,
                status_code=status_code,
            )
        )
