"""Holds: a reversible suspension. A held certificate is on the CRL and in OCSP as revoked
with reason certificateHold; releasing it takes it off (removeFromCRL)."""

from __future__ import annotations

import uuid
from datetime import datetime

from core import queries
from core.certificates import lock_visible
from core.errors import Conflict, Forbidden
from core.queries import CertificateRow
from core.records import Change, Changed, bump_crl_revisions, record_change
from core.statements import Database, Transaction
from schema.base import utcnow
from schema.certificates import Status, status_of
from schema.tokens import TokenClaims


async def set_active(
    db: Database, certificate_id: uuid.UUID, caller: TokenClaims, active: bool
) -> Changed:
    """Hold (false) or release (true); no change, no event. A revoked or expired certificate
    has no hold to change: a conflict whatever its flag says. A hold an admin placed is
    lifted only by an admin; an admin holding what its owner held makes the hold the
    admin's (a history row, no event: the state is the one it had)."""
    try:
        async with db.transaction() as tx:
            row, actor = await lock_visible(tx, certificate_id, caller)
            now = utcnow()
            before = status_of(row.revoked_at, row.not_after, row.is_active, now)
            if before in (Status.REVOKED, Status.EXPIRED):
                verb = "activated" if active else "deactivated"
                raise Conflict(f"a {before.value} certificate cannot be {verb}")
            if row.is_active == active:
                if active or row.held_by_admin or not actor.is_admin:
                    return Changed(row, False)
                cert = await _take_over_hold(tx, row, actor.id, now)
                return Changed(cert, False)
            if active and row.held_by_admin and not actor.is_admin:
                raise Forbidden("an admin placed this hold; only an admin can lift it")
            held_at = None if active else now
            by_admin = not active and actor.is_admin
            cert = row._replace(
                is_active=active, held_at=held_at, held_by_admin=by_admin, updated_at=now
            )
            updated = await tx.start(
                queries.SET_HOLD,
                certificate_id=cert.id,
                active=active,
                hold_started=held_at,
                by_admin=by_admin,
                changed_at=now,
            )
            change = Change.RELEASED if active else Change.HELD
            await record_change(tx, cert, change, before, actor.id)
            await bump_crl_revisions(tx, [cert])
            if await updated.one() is None:
                raise _Overtaken  # a concurrent request changed it first (SQLite): undo ours
    except _Overtaken:
        # Its change is the answer: as if this request had come second, as it did.
        return await set_active(db, certificate_id, caller, active)
    return Changed(cert, True)


async def _take_over_hold(
    tx: Transaction, row: CertificateRow, admin_id: uuid.UUID, now: datetime
) -> CertificateRow:
    """An admin holding what its owner already held: the hold becomes the admin's (so the
    owner can no longer lift it, nor renew). The state is the one it had: the CRL and OCSP
    entry stay as they were (its date too) and no event is sent; the history says who."""
    cert = row._replace(held_by_admin=True, updated_at=now)
    updated = await tx.start(queries.SET_ADMIN_HOLD, certificate_id=cert.id, changed_at=now)
    await record_change(tx, cert, Change.ADMIN_HOLD, Status.INACTIVE, admin_id)
    if await updated.one() is None:
        raise _Overtaken  # released, revoked or taken over concurrently (SQLite): undo ours
    return cert


class _Overtaken(Exception):
    """A concurrent request made the change this transaction was about to make."""
