"""What relying parties see: the CRL (cached, rebuilt on change) and OCSP answers.

The CRL is rebuilt only when something changed. Every hold, release and revocation bumps
the issuer's revision (a counter spread over `crl_revisions` slots) in its own transaction
(`core.records.bump_crl_revisions`), and a built CRL records the revision it was built
from. A request compares the two in one small read: equal means the stored CRL already
reflects every committed change; different means build one, and publish it with a
compare-and-set on the CRL number so that concurrent builders in several processes never
give two different CRLs the same number.

Rebuilds are coalesced: with `refresh` (CRL_REFRESH_SECONDS) above zero, a stored CRL whose
snapshot is less than `refresh` old is served even when changes were committed after it,
so a customer toggling a hold as fast as it can causes at most one rebuild per `refresh`
seconds, not one per toggle. A CRL's thisUpdate is the moment of that snapshot (taken just
before the rows are read), so "every change committed `refresh` seconds before the
request is on it" holds. OCSP reads the row itself and is always current.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import anyio.to_thread
from cryptography.x509 import ocsp
from sqlalchemy import bindparam, func, not_, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from certificate_api.authority.directory import Authorities
from certificate_api.authority.service import IssuingCa
from certificate_api.pki import revocation as pki
from certificate_api.pki.ca import Issuer
from certificate_api.revocation.builder import OFFLOAD_ENTRIES, CrlProcess
from certificate_api.revocation.responder import ResponderKeeper
from core.statements import Database, Query
from schema.base import utcnow
from schema.certificates import (
    CRL_SLOTS,
    Certificate,
    CrlRevision,
    CrlState,
)

log = logging.getLogger(__name__)


# --- CRL ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crl:
    """A published CRL."""

    number: int
    der: bytes
    this_update: datetime
    next_update: datetime


class CrlCache:
    """The CRL this process last served per issuer, so an unchanged one is not even re-read
    from the DB; with a database URL, big CRLs are built in a helper process (`builder.py`)."""

    def __init__(self, database_url: str | None = None) -> None:
        self.crls: dict[uuid.UUID, Crl] = {}
        self.build_lock = threading.Lock()  # one build per process at a time
        self.helper = CrlProcess(database_url) if database_url else None

    def build(
        self, session: Session, ca: IssuingCa, state: _State, validity: timedelta
    ) -> Crl | None:
        """Build and publish a CRL from `state`: in the helper process when it is big."""
        if self.helper is not None and state.entries >= OFFLOAD_ENTRIES:
            session.rollback()  # nothing held open while the helper works
            built: Crl | None = self.helper.build(ca, state, validity)
            return built
        return _build(session, ca, state, validity)

    def close(self) -> None:
        """Stop the helper process, if one was started."""
        if self.helper is not None:
            self.helper.close()


def ensure_crl_state(session: Session, issuer_id: uuid.UUID) -> None:
    """Create the issuer's CRL state row and counter slots if missing, and commit."""
    add_crl_state(session, issuer_id)
    session.commit()


def add_crl_state(session: Session, issuer_id: uuid.UUID) -> None:
    """Create the issuer's CRL state row and counter slots if missing, in the session's
    transaction: a new intermediate has them before its first leaf can be held."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # Both dialects' insert constructs have on_conflict_do_nothing.
    session.execute(
        insert(CrlState)
        .values(issuer_id=issuer_id, crl_number=0, entries=0)
        .on_conflict_do_nothing(index_elements=["issuer_id"])
    )
    slots = [{"issuer_id": issuer_id, "slot": slot, "revision": 0} for slot in range(CRL_SLOTS)]
    session.execute(
        insert(CrlRevision)
        .values(slots)
        .on_conflict_do_nothing(index_elements=["issuer_id", "slot"])
    )


def revoked_entries(
    session: Session, issuer_id: uuid.UUID, now: datetime, validity: timedelta
) -> list[pki.Revoked]:
    """Every held or revoked certificate of the issuer, until one CRL period after it expires.

    Keeping an expired certificate for one more period means a revocation made just before
    expiry still reaches relying parties on a CRL that was valid when they fetched it.
    """
    rows = session.execute(
        select(
            Certificate.serial_number,
            Certificate.revoked_at,
            Certificate.revocation_reason,
            Certificate.held_at,
        )
        .where(
            Certificate.issuer_id == issuer_id,
            or_(
                not_(Certificate.is_active), Certificate.revoked_at.is_not(None)
            ),  # index predicate
            Certificate.not_after > now - validity,
        )
        .order_by(Certificate.serial_number)
    ).all()
    entries = []
    for serial, revoked_at, reason, held_at in rows:
        if revoked_at is not None:
            entries.append(pki.Revoked(int(serial, 16), revoked_at, reason or "unspecified"))
        else:
            entries.append(pki.Revoked(int(serial, 16), held_at or now, "certificateHold"))
    return entries


def current_crl(
    session: Session,
    ca: IssuingCa,
    cache: CrlCache,
    validity: timedelta,
    refresh: timedelta = timedelta(0),
) -> Crl:
    """The CRL reflecting every change committed `refresh` before this call (with `refresh`
    zero: every change committed before it); built only if needed."""
    asked_at = utcnow()
    wanted: int | None = None  # every change committed before this call is at or below it
    for _ in range(5):
        state = _state(session, ca.id)
        wanted = state.revision if wanted is None else wanted
        if not _covers(state, wanted, validity, asked_at - refresh):
            with cache.build_lock:
                state = _state(session, ca.id)
                # Another thread or process may have built one meanwhile that is new enough.
                if not _covers(state, wanted, validity, asked_at - refresh):
                    built = cache.build(session, ca, state, validity)
                    if built is not None:
                        cache.crls[ca.id] = built
                        return built
                    continue
        stored = _stored(session, ca.id, state, cache)
        if stored is not None:
            return stored
        # A newer CRL was published between reading the state and its bytes: look again.
    raise RuntimeError("could not publish a CRL: concurrent builders kept winning")


@dataclass(frozen=True)
class _State:
    revision: int
    built_revision: int | None
    crl_number: int
    this_update: datetime | None
    next_update: datetime | None
    # Before the snapshot was taken: every change committed before this moment is in it.
    read_at: datetime
    entries: int = 0  # on the published CRL


def _state(session: Session, issuer_id: uuid.UUID) -> _State:
    session.rollback()  # a fresh snapshot: see everything committed until now
    read_at = utcnow()
    revision = (
        select(func.coalesce(func.sum(CrlRevision.revision), 0))
        .where(CrlRevision.issuer_id == issuer_id)
        .scalar_subquery()
    )
    row = session.execute(
        select(
            revision,
            CrlState.built_revision,
            CrlState.crl_number,
            CrlState.this_update,
            CrlState.next_update,
            CrlState.entries,
        ).where(CrlState.issuer_id == issuer_id)
    ).one_or_none()
    if row is None:
        ensure_crl_state(session, issuer_id)
        return _State(0, None, 0, None, None, read_at)
    revision, built_revision, number, this_update, next_update, entries = row
    return _State(revision, built_revision, number, this_update, next_update, read_at, entries)


def _covers(state: _State, revision: int, validity: timedelta, fresh_after: datetime) -> bool:
    """Less than half its validity old, and built from `revision` or later, or from a
    snapshot taken after `fresh_after` (a coalesced rebuild: recent enough)."""
    if state.built_revision is None or state.this_update is None:
        return False
    if utcnow() >= state.this_update + validity / 2:
        return False
    return state.built_revision >= revision or state.this_update > fresh_after


def _stored(session: Session, issuer_id: uuid.UUID, state: _State, cache: CrlCache) -> Crl | None:
    """The published CRL the state names, or None if a newer one has replaced it."""
    cached = cache.crls.get(issuer_id)
    if cached is not None and cached.number == state.crl_number:
        return cached
    der = session.scalar(
        select(CrlState.der).where(
            CrlState.issuer_id == issuer_id, CrlState.crl_number == state.crl_number
        )
    )
    if der is None or state.this_update is None or state.next_update is None:
        return None
    crl = Crl(state.crl_number, der, state.this_update, state.next_update)
    cache.crls[issuer_id] = crl
    return crl


def _build(session: Session, ca: IssuingCa, state: _State, validity: timedelta) -> Crl | None:
    """Build from the current rows and publish if nobody published a newer number meanwhile."""
    started = time.perf_counter()
    # thisUpdate: no later than the snapshot the rows come from (whole seconds, rounded down).
    now = state.read_at.replace(microsecond=0)
    entries = revoked_entries(session, ca.id, now, validity)
    number = state.crl_number + 1
    der = pki.build_crl(ca.issuer, entries, number, now, now + validity)
    try:
        result = session.execute(
            update(CrlState)
            .where(CrlState.issuer_id == ca.id, CrlState.crl_number == state.crl_number)
            .values(
                crl_number=number,
                built_revision=state.revision,
                der=der,
                this_update=now,
                next_update=now + validity,
                entries=len(entries),
                built_at=utcnow(),
            )
        )
        published = result.rowcount  # type: ignore[attr-defined]
        session.commit()
    except OperationalError:  # SQLite: another writer got there first
        session.rollback()
        return None
    if published != 1:
        return None
    log.info(
        "built CRL",
        extra={
            "crl_number": number,
            "entries": len(entries),
            "bytes": len(der),
            "ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    return Crl(number, der, now, now + validity)


# --- OCSP -----------------------------------------------------------------------------------


class StatusRow(NamedTuple):
    """What OCSP needs of a certificate."""

    revoked_at: datetime | None
    revocation_reason: str | None
    is_active: bool
    held_at: datetime | None


# What OCSP needs of a certificate, by the issuer and serial a request names.
STATUS = Query(
    select(
        Certificate.revoked_at,
        Certificate.revocation_reason,
        Certificate.is_active,
        Certificate.held_at,
    ).where(
        Certificate.serial_number == bindparam("serial_number"),
        Certificate.issuer_id == bindparam("issuer_id"),
    ),
    StatusRow,
)


def certificate_status(row: StatusRow | None) -> pki.CertStatus:
    """good, revoked (a hold is revoked with certificateHold), or unknown (no row)."""
    if row is None:
        return pki.CertStatus(ocsp.OCSPCertStatus.UNKNOWN)
    if row.revoked_at is not None:
        reason = row.revocation_reason or "unspecified"
        return pki.CertStatus(ocsp.OCSPCertStatus.REVOKED, row.revoked_at, reason)
    if not row.is_active:
        held_at = row.held_at or utcnow()
        return pki.CertStatus(ocsp.OCSPCertStatus.REVOKED, held_at, "certificateHold")
    return pki.CertStatus(ocsp.OCSPCertStatus.GOOD)


async def ocsp_response(
    db: Database,
    sessions: Callable[[], Session],
    authorities: Authorities,
    keeper: ResponderKeeper,
    der: bytes,
) -> bytes:
    """The DER OCSPResponse for a DER OCSPRequest; never raises for what a client sent.

    One query; the signature (a P-256 responder key by default) takes a fraction of a
    millisecond and is made on the event loop. Loading or renewing the responder
    certificate, which happens once per process and then every few weeks, runs in a thread.
    A request about a leaf of any intermediate that still has leaves is answered by that
    intermediate's own responder.
    """
    try:
        question = pki.parse_request(der)
    except pki.OcspMalformed:
        return pki.refuse(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    ca = _issuer_asked(authorities, question)
    if ca is None:

        def refresh() -> IssuingCa | None:
            with sessions() as session:
                authorities.refresh_soon(session)
            return _issuer_asked(authorities, question)

        ca = await anyio.to_thread.run_sync(refresh)  # an intermediate rotated in meanwhile?
    if ca is None:
        # Not a certificate of this CA: we are not authoritative (RFC 5019 §2.2.3).
        return pki.refuse(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    row = await db.one(STATUS, serial_number=format(question.serial, "x"), issuer_id=ca.id)
    responder = keeper.ready(ca)
    if responder is None:

        def load() -> Issuer:
            with sessions() as session:
                return keeper.get(session, ca)

        responder = await anyio.to_thread.run_sync(load)
    now = utcnow().replace(microsecond=0)
    valid_until = now + keeper.answers_valid_for
    return pki.respond(question, certificate_status(row), responder, now, valid_until)


def _issuer_asked(authorities: Authorities, question: pki.OcspQuestion) -> IssuingCa | None:
    return next((ca for ca in authorities.all() if pki.asks_about(question, ca.certificate)), None)


__all__ = [
    "Crl",
    "CrlCache",
    "ResponderKeeper",
    "current_crl",
    "ensure_crl_state",
    "ocsp_response",
]
