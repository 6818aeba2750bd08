"""Renewal: a new certificate for the same names and key type as one of the caller's, linked
to it by `renewed_from`, through the same issuance call as any other (name check, blocked
keys, Idempotency-Key, events, the workers woken after the commit). With
`revoke_previous`, the old one is revoked as superseded in the new one's transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from core.certificates import visible_to
from core.errors import NotFound
from core.issuance import IssuerContext, IssueResult, Renewal, issue_certificate
from core.orders import IssueRequest
from schema.tokens import TokenClaims


@dataclass(frozen=True)
class RenewRequest:
    """What may change in a renewal: the validity, and the key (a CSR keeps it with the
    client; its key must be of the renewed certificate's type)."""

    validity_days: int | None = None
    csr: str | None = None
    revoke_previous: bool = False


async def renew_certificate(
    issuer: IssuerContext,
    caller: TokenClaims,
    certificate_id: uuid.UUID,
    request: RenewRequest,
    idempotency_key: str | None = None,
) -> IssueResult:
    """Renew one of the caller's certificates: not found for anyone else's (an admin's
    too: a renewal issues to the caller), 409 when it is revoked or on an administrator's
    hold, 403 when a name is no longer the account's, 422 for a bad validity or CSR."""
    old, actor = await visible_to(issuer.db, certificate_id, caller)
    if old.account_id != actor.id:
        raise NotFound("no such certificate")
    issue = IssueRequest(
        common_name=old.common_name,
        dns_names=list(old.dns_names),
        ip_addresses=list(old.ip_addresses),
        key_type=old.key_type,
        validity_days=request.validity_days,
        csr=request.csr,
    )
    renewal = Renewal(old, request.revoke_previous)
    return await issue_certificate(issuer, caller, issue, idempotency_key, renewal)
