"""Revocation: permanent, with an RFC 5280 reason. One path, whoever revokes: the REST
route (one certificate), account deletion (every certificate of the account), and any
later front door; each runs `revoke_row` on a certificate row locked in its transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from core import queries
from core.certificates import lock_visible, visible_to
from core.errors import Conflict, Invalid, NotFound
from core.idempotency import Idempotency, remember, replay, twin_committed
from core.keys import KEY_COMPROMISE, certificate_spki_sha256, verify_key_proof
from core.queries import CertificateRow
from core.records import Change, Changed, bump_crl_revisions, record_change
from core.statements import Database, Pending, Transaction
from schema.base import utcnow
from schema.certificates import Status, status_of
from schema.tokens import TokenClaims

REVOKE = "revoke"  # the operation an Idempotency-Key is remembered under


@dataclass(frozen=True)
class Revocation:
    """What a revocation asks: an RFC 5280 reason, and how it proves possession of the
    certificate's private key, if it does: a `key_proof` JWS (verified by `revoke_row`), or
    `signed_by_key` for a request a front door found signed by the certificate's own key
    (ACME revokeCert with `jwk`)."""

    reason: str
    key_proof: str | None = None
    signed_by_key: bool = False


async def revoke_row(
    tx: Transaction,
    row: CertificateRow,
    asked: Revocation,
    actor_id: uuid.UUID | None,
    now: datetime,
) -> tuple[CertificateRow, Pending[queries.UpdatedRow]]:
    """Revoke a certificate whose row `tx` holds locked: its columns, its history row and
    its event; for keyCompromise, its stored key destroyed and its public key blocked:
    for every account when the revocation proves possession of the private key (a
    key_proof, a request signed by the key, or the service made and holds the key), for
    the certificate's owner otherwise. A key_proof that does not verify, or comes with
    another reason, is invalid and nothing is written.
    Returns it as it now is, and the UPDATE's answer (None if a concurrent transaction
    revoked it first, on a backend without row locks). The caller bumps the CRL revision,
    last (`records.bump_crl_revisions`). Revoking twice is a conflict."""
    if asked.key_proof is not None:
        if asked.reason != KEY_COMPROMISE:
            raise Invalid.field(["key_proof"], f"goes with reason {KEY_COMPROMISE} only")
        verify_key_proof(asked.key_proof, row.id, row.certificate_pem)
    before = status_of(row.revoked_at, row.not_after, row.is_active, now)
    if before is Status.REVOKED:
        raise Conflict("the certificate is already revoked")
    reason = asked.reason
    cert = row._replace(revoked_at=now, revocation_reason=reason, updated_at=now)
    updated = await tx.start(queries.SET_REVOKED, certificate_id=cert.id, at=now, reason=reason)
    if reason == KEY_COMPROMISE:
        # A CSR is no secret: a stranger may have had its key certified. Blocked for
        # everyone without proof of possession, the key's holder would be locked out.
        proven = asked.key_proof is not None or asked.signed_by_key or row.has_private_key
        cert = cert._replace(has_private_key=False)
        await tx.execute(queries.DELETE_KEY, certificate_id=cert.id)
        await tx.execute(
            queries.INSERT_BLOCKED_KEY,
            certificate_id=cert.id,
            spki_sha256=certificate_spki_sha256(cert.certificate_pem),
            blocked_at=now,
            account_id=None if proven else cert.account_id,
        )
    await record_change(tx, cert, Change.REVOKED, before, actor_id)
    return cert, updated


async def revoke(
    db: Database,
    certificate_id: uuid.UUID,
    caller: TokenClaims,
    asked: Revocation,
    idem: Idempotency,
) -> Changed:
    """Revoke one certificate for good (a held one too), for its owner or an admin;
    revoking twice is a conflict. `changed` is false for a replayed Idempotency-Key."""
    account_id = caller.account_id
    # A replay is looked for first, outside the transaction: it may delete an expired key.
    if await replay(db, account_id, REVOKE, idem):
        return Changed((await visible_to(db, certificate_id, caller))[0], False)
    try:
        async with db.transaction() as tx:
            row, actor = await lock_visible(tx, certificate_id, caller)
            if await twin_committed(tx, account_id, REVOKE, idem):
                # Read again: without row locks (SQLite) `row` may predate the twin.
                again = await tx.one(queries.BY_ID, certificate_id=certificate_id)
                return Changed(again or row, False)
            cert, updated = await revoke_row(tx, row, asked, actor.id, utcnow())
            await remember(tx, account_id, REVOKE, idem, (cert.id, 200))
            await bump_crl_revisions(tx, [cert])
            if await updated.one() is None:  # revoked by a concurrent request (SQLite)
                raise Conflict("the certificate is already revoked")
    except (IntegrityError, Conflict) as exc:
        # A twin with the same Idempotency-Key got there first: its answer is ours (or
        # refused if the key came with another request).
        if await replay(db, account_id, REVOKE, idem):
            return Changed((await visible_to(db, certificate_id, caller))[0], False)
        # Without row locks (SQLite) a concurrent revocation can commit first and make one of
        # this transaction's inserts (a blocked key) collide before its update says so.
        if isinstance(exc, IntegrityError):
            now_row = (await visible_to(db, certificate_id, caller))[0]
            if now_row.revoked_at is not None:
                raise Conflict("the certificate is already revoked") from None
        raise
    return Changed(cert, True)


async def revoke_by_id(
    tx: Transaction,
    certificate_id: uuid.UUID,
    reason: str,
    actor_id: uuid.UUID | None,
) -> CertificateRow:
    """Revoke one certificate by id, whoever owns it (an operator's act), in the caller's
    transaction; not found if there is no such certificate."""
    row = await tx.one(queries.LOCK_BY_ID, certificate_id=certificate_id)
    if row is None:
        raise NotFound("no such certificate")
    cert, _updated = await revoke_row(tx, row, Revocation(reason), actor_id, utcnow())
    await bump_crl_revisions(tx, [cert])
    return cert


async def revoke_account_certificates(
    tx: Transaction, account_id: uuid.UUID, reason: str, actor_id: uuid.UUID | None, now: datetime
) -> int:
    """Revoke every certificate of an account still unrevoked and destroy its stored keys,
    in the caller's transaction (the account's deletion); returns how many were revoked."""
    rows = await tx.all(queries.LOCK_ACCOUNT_CERTIFICATES, account_id=account_id)
    asked = Revocation(reason)
    revoked = [(await revoke_row(tx, row, asked, actor_id, now))[0] for row in rows]
    await tx.execute(queries.DELETE_ACCOUNT_KEYS, account_id=account_id)
    await bump_crl_revisions(tx, revoked)
    return len(revoked)
