"""The delivery worker: claim due events, sign, POST, and settle each attempt."""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from schema.base import utcnow
from schema.db import normalize_url
from schema.events import EVENTS_CHANNEL, Event
from worker import expiry, outbox, retention, signing
from worker.posting import Outcome, Poster, redact_url
from worker.schedule import Job, Schedule, database_error_text
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

ATTEMPTS = Counter("webhook_attempts_total", "Delivery attempts", ["outcome"])
DELIVERED = Counter("webhook_delivered_total", "Events delivered")
FAILED = Counter("webhook_failed_total", "Events given up after the retry window")
LATENCY = Histogram(
    "webhook_delivery_latency_seconds",
    "From commit to successful delivery",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 3600, 86400),
)
STATE = Gauge("webhook_events", "Events by state", ["state"])

# After a failed database round the worker waits 0.5, 1, 2 ... up to this, then goes on.
OUTAGE_PAUSE_CAP_SECONDS = 30.0

# The outcomes of one round of posts, kept until they are recorded.
Settlement = tuple[list[Event], list[Outcome | None], datetime]


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^attempt)]."""
    return random.uniform(0, min(cap, base * 2 ** min(attempt, 40)))  # noqa: S311


class Wakeup:
    """Set when an event is committed: LISTEN on PostgreSQL, plain polling elsewhere.

    A listener thread holds one connection to the direct URL; if it drops (a database
    restart), polling carries on alone while the listener reconnects with a growing pause.
    A pooler in transaction mode (PgBouncer) accepts LISTEN and then hands the server
    connection to other clients, so the listener first checks that a NOTIFY of its own
    reaches it, and leaves the waking to polling when none does.
    `wait` returns early on a notification or on `set()`.
    """

    PROBE_SECONDS = 5.0

    def __init__(self, direct_url: str) -> None:
        self.flag = threading.Event()
        self.stopping = threading.Event()
        self.listening = threading.Event()  # set while notifications are known to arrive
        self.thread: threading.Thread | None = None
        url = make_url(normalize_url(direct_url))
        if url.get_backend_name() == "postgresql":
            self.dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
            self.thread = threading.Thread(target=self._listen, name="webhook-listen", daemon=True)
            self.thread.start()

    def _listen(self) -> None:
        pause = 0.5
        while not self.stopping.is_set():
            try:
                with psycopg.connect(
                    self.dsn, autocommit=True, connect_timeout=10, prepare_threshold=None
                ) as conn:
                    conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    if not self._probe(conn):
                        # Most likely on the server connection that took the LISTEN, which
                        # other clients of the pooler now share.
                        conn.execute("UNLISTEN *")
                        log.warning(
                            "notifications do not reach this connection (a pooler in "
                            "transaction mode? set DATABASE_DIRECT_URL): polling only"
                        )
                        return
                    self.listening.set()
                    if pause > 0.5:
                        log.info("event listener reconnected")
                    pause = 0.5
                    self.flag.set()  # events committed while it was away: look now
                    while not self.stopping.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.flag.set()
            except psycopg.Error as exc:
                self.listening.clear()
                if pause == 0.5:
                    log.warning(
                        "event listener lost its connection; polling meanwhile",
                        extra={"error": type(exc).__name__},
                    )
                self.stopping.wait(pause)
                pause = min(pause * 2, OUTAGE_PAUSE_CAP_SECONDS)

    def _probe(self, conn: psycopg.Connection[Any]) -> bool:
        """Send a NOTIFY from another connection and see whether this one hears it."""
        token = f"probe-{uuid.uuid4().hex}"
        with psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None) as sender:
            sender.execute("SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, token))
        deadline = time.monotonic() + self.PROBE_SECONDS
        while (left := deadline - time.monotonic()) > 0 and not self.stopping.is_set():
            for note in conn.notifies(timeout=min(left, 1.0)):
                self.flag.set()
                if note.payload == token:
                    return True
        return False

    def wait(self, seconds: float) -> None:
        """Until an event is committed (or `set`), at most `seconds`."""
        self.flag.wait(seconds)
        self.flag.clear()

    def set(self) -> None:
        """Wake the waiter now."""
        self.flag.set()

    def close(self) -> None:
        """Stop listening."""
        self.stopping.set()
        self.flag.set()
        if self.thread is not None:
            self.thread.join(timeout=5)


class Worker:
    """Runs until stopped; several workers (processes) may run at once on PostgreSQL.

    No answer of a receiver and no database outage ends `run`: a failed round is logged,
    followed by a growing pause, and tried again.
    """

    def __init__(self, settings: WorkerSettings, sessions: sessionmaker[Session], secret: str):
        self.settings = settings
        self.sessions = sessions
        self.stopping = threading.Event()
        self.poster = Poster(
            signing.secret_bytes(secret),
            settings.webhook_timeout_seconds,
            settings.webhook_concurrency,
        )
        self.wakeup = Wakeup(settings.effective_direct_url)
        self.unsettled: Settlement | None = None
        self.schedule = Schedule(self.jobs())

    def jobs(self) -> list[Job]:
        """The periodic jobs this worker runs beside deliveries."""
        settings = self.settings
        return [
            Job(
                "prune",
                settings.prune_interval_seconds,
                lambda stopping: retention.prune(self.sessions, settings, stopping),
            ),
            Job(
                "expiry-notices",
                settings.expiry_check_seconds,
                lambda stopping: expiry.record_due(self.sessions, settings, stopping),
            ),
        ]

    def stop(self) -> None:
        """Finish the batch in hand, then return from `run`."""
        self.stopping.set()
        self.wakeup.set()

    def run(self) -> None:
        """Poll, deliver, repeat; idle waits at most `webhook_poll_seconds`."""
        url = self.settings.webhook_url
        if url is None:
            log.warning("WEBHOOK_URL is not set: events are kept and not sent")
        else:
            log.info("delivering events", extra={"webhook_url": redact_url(url)})
        self.schedule.start()
        last_gauge, pause = 0.0, 0.0
        while not self.stopping.is_set():
            if time.monotonic() - last_gauge > 5:
                self._update_gauges()
                last_gauge = time.monotonic()
            try:
                busy = url is not None and self.run_once(url) >= self.settings.webhook_batch_size
            except SQLAlchemyError as exc:
                pause = min(max(pause * 2, 0.5), OUTAGE_PAUSE_CAP_SECONDS)
                log.warning(
                    "database unavailable; retrying",
                    extra={"error": database_error_text(exc), "retry_in_s": pause},
                )
                self.stopping.wait(pause)
                continue
            except Exception:  # a bug must not end deliveries: log it, pause, go on
                # Outcomes that failed to record for a reason other than the database would
                # fail again: drop them, and their events come back after their lease.
                self.unsettled = None
                pause = min(max(pause * 2, 0.5), OUTAGE_PAUSE_CAP_SECONDS)
                log.exception("delivery round failed; retrying", extra={"retry_in_s": pause})
                self.stopping.wait(pause)
                continue
            if pause:
                log.info("delivering again")
                pause = 0.0
            if not busy and not self.stopping.is_set():
                self.wakeup.wait(self.settings.webhook_poll_seconds)
        self.schedule.stop()
        self.wakeup.close()
        self.poster.close()

    def run_once(self, url: str) -> int:
        """One claim-and-deliver round; returns how many events were attempted.

        The posts go out in parallel; their outcomes are then recorded in one transaction
        (one commit per round, not per event). Outcomes the database could not take are
        kept and recorded first in the next round; each settles only if its lease is
        unchanged, so a late record never overrides another worker's. A crash in between
        only means those events are sent again after their lease (at-least-once).
        """
        if self.unsettled is not None:
            self._settle(url, *self.unsettled)
        with self.sessions() as session:
            if outbox.endpoint_disabled(session, url) is not None:
                return 0
            lease = timedelta(seconds=self.settings.lease_seconds)
            events = outbox.claim(session, self.settings.webhook_batch_size, lease)
        if not events:
            return 0
        outcomes = self.poster.post_batch(url, events)
        self.unsettled = (events, outcomes, utcnow())
        self._settle(url, *self.unsettled)
        return len(events)

    def _settle(
        self, url: str, events: list[Event], outcomes: list[Outcome | None], now: datetime
    ) -> None:
        with self.sessions() as session:
            retries = [
                self._record(session, url, event, outcome, now)
                for event, outcome in zip(events, outcomes, strict=True)
            ]
            session.commit()
        self.unsettled = None
        for event, outcome, retry in zip(events, outcomes, retries, strict=True):
            self._count(url, event, outcome, retry, now)

    def _record(
        self, session: Session, url: str, event: Event, outcome: Outcome | None, now: datetime
    ) -> tuple[float, bool] | None:
        """Write one outcome; for a failed attempt, the delay chosen and whether it gave up."""
        if outcome is None:
            outbox.release(session, event)
        elif outcome.ok:
            outbox.delivered(session, event, outcome.status or 200, now)
        elif outcome.gone:
            outbox.disable_endpoint(session, url, f"{redact_url(url)} answered 410 Gone", now)
            outbox.release(session, event)
        else:
            delay, give_up = self._retry_delay(event, outcome, now)
            again = None if give_up else now + timedelta(seconds=delay)
            outbox.retry_later(session, event, outcome.status, outcome.error, again)
            return delay, give_up
        return None

    def _retry_delay(self, event: Event, outcome: Outcome, now: datetime) -> tuple[float, bool]:
        """Seconds until the next attempt, and whether the retry window is over.

        A receiver's Retry-After is honoured up to the end of the retry window, so one
        absurd header cannot park an event for centuries (or overflow a date).
        """
        settings = self.settings
        deadline = event.retry_until or (
            event.created_at + timedelta(seconds=settings.webhook_retry_for_seconds)
        )
        left = (deadline - now).total_seconds()
        delay = outcome.retry_after
        if delay is None:
            delay = backoff(
                event.attempts,
                settings.webhook_backoff_base_seconds,
                settings.webhook_backoff_cap_seconds,
            )
        return max(0.0, min(delay, left)), left <= 0

    def _count(
        self,
        url: str,
        event: Event,
        outcome: Outcome | None,
        retry: tuple[float, bool] | None,
        now: datetime,
    ) -> None:
        """Metrics and log lines, once the outcome is recorded."""
        if outcome is None:
            return
        if outcome.ok:
            ATTEMPTS.labels("delivered").inc()
            DELIVERED.inc()
            LATENCY.observe((now - event.created_at).total_seconds())
            return
        if outcome.gone:
            ATTEMPTS.labels("gone").inc()
            log.error(
                "webhook endpoint answered 410: deliveries stopped until re-enabled",
                extra={"event_id": str(event.id), "webhook_url": redact_url(url)},
            )
            return
        ATTEMPTS.labels("failed").inc()
        delay, give_up = retry or (0.0, False)
        if give_up:
            FAILED.inc()
            log.error(
                "webhook event failed after its retry window",
                extra={"event_id": str(event.id), "attempts": event.attempts + 1},
            )
        else:
            log.warning(
                "webhook attempt failed; will retry",
                extra={
                    "event_id": str(event.id),
                    "status": outcome.status,
                    "error": outcome.error,
                    "retry_in_s": round(delay, 2),
                },
            )

    def _update_gauges(self) -> None:
        try:
            with self.sessions() as session:
                for state, count in outbox.counts(session).items():
                    STATE.labels(state).set(count)
        except Exception as exc:  # metrics must never stop deliveries
            log.warning("could not count events", extra={"error": type(exc).__name__})
