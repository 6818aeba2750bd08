"""Settles the validations customers asked for: claim, check, record the outcome and its event.

A request is a row (`domain_authorizations.validation_type` set while `pending`, or an ACME
challenge `processing`), so it survives any crash. A claim is a lease: a worker killed
mid-check leaves the row to be claimed again once the lease runs out. Each worker keeps
`slots` checks going and refills a slot as soon as it frees, taking validations fairly
across customers (worker/validation_queue.py). The outcome and its `domain.*` event commit
together, only if the row is still pending and still there (deleted meanwhile: nothing is
recorded). Every check ends with an outcome: one that breaks, or whose outcome cannot be
recorded, is recorded `invalid` saying an unexpected failure happened. The checks run on an
event loop of this runner's own thread; the database calls are short and run in threads
beside it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from prometheus_client import Counter
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import validation
from core.acme import challenges
from schema.base import utcnow
from schema.domains import DomainAuthorization, DomainStatus, domain_event_data
from schema.events import EventType, record_event
from schema.settings import CommonSettings
from worker import validation_queue
from worker.validation import Checker, ValidationConfig, unexpected_failure
from worker.validation_queue import Claimed, Job

log = logging.getLogger(__name__)
SETTLED = Counter("domain_validations_total", "Domain validations settled", ["outcome"])
POLL_SECONDS = 0.5
# The database out of reach (a connection lost or refused, the pool exhausted), not a fault
# of the outcome being recorded.
UNREACHABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
SLOTS = 16  # checks in hand at once; one customer has at most half of them in flight


class ValidationRunner:
    """Runs in a thread of the worker process until `stop`."""

    def __init__(
        self, settings: CommonSettings, sessions: sessionmaker[Session], slots: int = SLOTS
    ) -> None:
        self.config = ValidationConfig.from_settings(settings)
        self.days = settings.domain_authorization_days
        self.lease = timedelta(seconds=self.config.timeout * 2 + 5)
        self.sessions = sessions
        self.slots = slots
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
        running: set[asyncio.Task[None]] = set()
        try:
            while not self.stopping.is_set():
                await self._fill(checker, running)
                if running:  # until a slot frees, or a while to look for new work
                    _done, running = await asyncio.wait(
                        running, timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED
                    )
                else:
                    await asyncio.to_thread(self.stopping.wait, POLL_SECONDS)
            if running:
                await asyncio.wait(running)
        finally:
            await checker.close()

    async def _fill(self, checker: Checker, running: set[asyncio.Task[None]]) -> None:
        """Claim validations, one at a time, while a slot is free and one is waiting."""
        while len(running) < self.slots and not self.stopping.is_set():
            try:
                job = await asyncio.to_thread(self.claim)
            except Exception:  # a database outage: try again at the next look
                log.exception("claiming a validation failed")
                return
            if job is None:
                return
            running.add(asyncio.create_task(self.settle_job(checker, job)))

    def claim(self) -> Job | None:
        """Lease the next validation to check (worker/validation_queue.py)."""
        with self.sessions() as session:
            return validation_queue.claim_next(session, self.slots, self.lease)

    async def settle_job(self, checker: Checker, job: Job) -> None:
        """Check a claimed validation of either kind and record its outcome. A failure to
        record (the database is down) leaves the lease to run out: the validation is then
        taken again."""
        try:
            if isinstance(job, Claimed):
                await self.settle(checker, job)
            else:
                await self.settle_acme(checker, job)
        except Exception:
            log.exception("settling a validation failed")

    async def settle(self, checker: Checker, claimed: Claimed) -> None:
        """Check one claimed validation and record its outcome."""
        key_auth = validation.key_authorization(
            claimed.token, validation.account_thumbprint(claimed.account_id)
        )
        error = await checker.check(
            claimed.name, claimed.kind, claimed.token, key_auth, claimed.include_subdomains
        )
        await self._record(lambda outcome: self.record(claimed, outcome), error)

    async def settle_acme(self, checker: Checker, claimed: challenges.ClaimedChallenge) -> None:
        """Check one ACME challenge (its key authorization names the account key) and record
        the outcome with all it changes."""
        key_auth = validation.key_authorization(claimed.token, claimed.thumbprint)
        error = await checker.check(
            claimed.name, claimed.type, claimed.token, key_auth, claimed.wildcard
        )

        def record(outcome: str | None) -> None:
            with self.sessions() as session:
                if challenges.record(session, claimed, outcome, self.days):
                    SETTLED.labels("valid" if outcome is None else "invalid").inc()
            log.info(
                "acme challenge settled",
                extra={"challenge_id": str(claimed.id), "type": claimed.type, "valid": not outcome},
            )

        await self._record(record, error)

    async def _record(self, record: Callable[[str | None], None], error: str | None) -> None:
        """`record(error)`. If that breaks for another reason than the database being out of
        reach, the validation is recorded invalid instead, with an unexpected failure."""
        try:
            await asyncio.to_thread(record, error)
        except UNREACHABLE:
            raise  # the lease runs out and the validation is taken again
        except Exception as exc:
            log.exception("recording a validation's outcome failed")
            await asyncio.to_thread(record, unexpected_failure(exc))

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
