"""Holds: a reversible suspension. A held certificate is on the CRL and in OCSP as revoked
with reason certificateHold; releasing it takes it off (removeFromCRL)."""

from __future__ import annotations

import uuid

from core import queries
from core.certificates import lock_visible
from core.errors import Conflict
from core.records import Change, Changed, bump_crl_revisions, record_change
from core.statements import Database
from schema.base import utcnow
from schema.certificates import Status, status_of
from schema.tokens import TokenClaims


async def set_active(
    db: Database, certificate_id: uuid.UUID, caller: TokenClaims, active: bool
) -> Changed:
    """Hold (false) or release (true); no change, no event. A revoked or expired certificate
    has no hold to change: a conflict whatever its flag says."""
    try:
        async with db.transaction() as tx:
            row, actor = await lock_visible(tx, certificate_id, caller)
            now = utcnow()
            before = status_of(row.revoked_at, row.not_after, row.is_active, now)
            if before in (Status.REVOKED, Status.EXPIRED):
                verb = "activated" if active else "deactivated"
                raise Conflict(f"a {before.value} certificate cannot be {verb}")
            if row.is_active == active:
                return Changed(row, False)
            held_at = None if active else now
            cert = row._replace(is_active=active, held_at=held_at, updated_at=now)
            updated = await tx.start(
                queries.SET_HOLD,
                certificate_id=cert.id,
                active=active,
                hold_started=held_at,
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


class _Overtaken(Exception):
    """A concurrent request made the change this transaction was about to make."""
