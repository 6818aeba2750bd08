"""Settles the validations customers asked for: claim, check, record the outcome and its event.

A request is a row (`domain_authorizations.validation_type` set while `pending`), so it
survives any crash. A claim is a lease: a worker killed mid-check leaves the row to be
claimed again once the lease runs out. The outcome and its `domain.*` event commit together,
only if the row is still pending and still there (deleted meanwhile: nothing is recorded).
The checks run on an event loop of this runner's own thread; the database calls are short
and run in threads beside it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta

from prometheus_client import Counter
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from core import validation
from core.acme import challenges
from schema.base import utcnow
from schema.domains import DomainAuthorization, DomainStatus, domain_event_data
from schema.events import EventType, record_event
from schema.settings import CommonSettings
from worker.validation import Checker, ValidationConfig

log = logging.getLogger(__name__)
SETTLED = Counter("domain_validations_total", "Domain validations settled", ["outcome"])
POLL_SECONDS = 0.5
BATCH = 16


@dataclass(frozen=True)
class Claimed:
    """A validation this worker holds the lease on."""

    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    include_subdomains: bool
    kind: str
    token: str


class ValidationRunner:
    """Runs in a thread of the worker process until `stop`."""

    def __init__(self, settings: CommonSettings, sessions: sessionmaker[Session]) -> None:
        self.config = ValidationConfig.from_settings(settings)
        self.days = settings.domain_authorization_days
        self.lease = timedelta(seconds=self.config.timeout * 2 + 5)
        self.sessions = sessions
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="validation", daemon=True)

    def start(self) -> None:
        """Begin claiming validations."""
        self.thread.start()

    def stop(self) -> None:
        """Finish the checks in hand, then end the thread."""
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=self.config.timeout + 5)

    def _run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        checker = Checker(self.config)
        try:
            while not self.stopping.is_set():
                try:
                    claimed = await asyncio.to_thread(self.claim)
                    answered = await asyncio.to_thread(self.claim_acme)
                    await asyncio.gather(
                        *(self.settle(checker, c) for c in claimed),
                        *(self.settle_acme(checker, c) for c in answered),
                    )
                    busy = bool(claimed or answered)
                except Exception:  # a database outage: try again at the next round
                    log.exception("validation round failed")
                    busy = False
                if not busy:
                    await asyncio.to_thread(self.stopping.wait, POLL_SECONDS)
        finally:
            await checker.close()

    async def settle(self, checker: Checker, claimed: Claimed) -> None:
        """Check one claimed validation and record its outcome."""
        key_auth = validation.key_authorization(
            claimed.token, validation.account_thumbprint(claimed.account_id)
        )
        error = await checker.check(
            claimed.name, claimed.kind, claimed.token, key_auth, claimed.include_subdomains
        )
        await asyncio.to_thread(self.record, claimed, error)

    def claim_acme(self) -> list[challenges.ClaimedChallenge]:
        """Lease the oldest ACME challenges clients answered (core/acme/challenges.py)."""
        with self.sessions() as session:
            return challenges.claim(session, self.lease, BATCH)

    async def settle_acme(self, checker: Checker, claimed: challenges.ClaimedChallenge) -> None:
        """Check one ACME challenge (its key authorization names the account key) and record
        the outcome with all it changes."""
        key_auth = validation.key_authorization(claimed.token, claimed.thumbprint)
        error = await checker.check(
            claimed.name, claimed.type, claimed.token, key_auth, claimed.wildcard
        )

        def record() -> None:
            with self.sessions() as session:
                if challenges.record(session, claimed, error, self.days):
                    SETTLED.labels("valid" if error is None else "invalid").inc()

        await asyncio.to_thread(record)
        log.info(
            "acme challenge settled",
            extra={"challenge_id": str(claimed.id), "type": claimed.type, "valid": error is None},
        )

    def claim(self) -> list[Claimed]:
        """Lease the oldest requested validations no live worker holds."""
        now = utcnow()
        da = DomainAuthorization
        with self.sessions() as session:
            rows = session.scalars(
                select(da)
                .where(
                    da.status == DomainStatus.PENDING.value,
                    da.validation_type.is_not(None),
                    da.expires_at > now,
                    or_(da.validation_leased_until.is_(None), da.validation_leased_until < now),
                )
                .order_by(da.validation_requested_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            ).all()
            claimed = []
            for row in rows:
                row.validation_leased_until = now + self.lease
                row.validation_attempts += 1
                assert row.validation_type is not None
                claimed.append(
                    Claimed(
                        row.id,
                        row.account_id,
                        row.name,
                        row.include_subdomains,
                        row.validation_type,
                        row.token,
                    )
                )
            session.commit()
        return claimed

    def record(self, claimed: Claimed, error: str | None) -> None:
        """The outcome and its event, in one transaction; nothing if the row changed."""
        now = utcnow()
        with self.sessions() as session:
            row = session.scalars(
                select(DomainAuthorization)
                .where(
                    DomainAuthorization.id == claimed.id,
                    DomainAuthorization.status == DomainStatus.PENDING.value,
                )
                .with_for_update()
            ).first()
            if row is None:
                return  # deleted, or settled by another worker whose lease ran out first
            row.validation_leased_until = None
            if error is None:
                row.status = DomainStatus.VALID.value
                row.validated_at = now
                row.expires_at = now + timedelta(days=self.days)
                event = EventType.DOMAIN_VALIDATED
            else:
                row.status = DomainStatus.INVALID.value
                row.error = error
                event = EventType.DOMAIN_INVALID
            record_event(session, event, row.id, domain_event_data(row, row.status))
            session.commit()
        SETTLED.labels(row.status).inc()
        log.info(
            "domain validation settled",
            extra={"domain_id": str(claimed.id), "type": claimed.kind, "valid": error is None},
        )
