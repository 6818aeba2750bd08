"""The delivery worker: claim due events, sign, POST, and settle each attempt."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from schema.base import utcnow
from schema.db import normalize_url
from schema.events import EVENTS_CHANNEL, Event
from worker import outbox, signing
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


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to."""

    ok: bool
    status: int | None
    error: str
    retry_after: float | None = None
    gone: bool = False


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^attempt)]."""
    return random.uniform(0, min(cap, base * 2 ** min(attempt, 40)))  # noqa: S311


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - now).total_seconds())


def attempt(client: httpx.Client, url: str, key: bytes, event: Event) -> Outcome:
    """POST the event once, signed now (a retry hours later still verifies)."""
    body = json.dumps(event.payload, separators=(",", ":")).encode()
    headers = signing.headers(key, str(event.id), int(time.time()), body)
    try:
        response = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500])
    status = response.status_code
    if 200 <= status < 300:
        return Outcome(True, status, "")
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("retry-after"), utcnow())
    return Outcome(False, status, f"HTTP {status}", retry_after, gone=status == 410)


class Wakeup:
    """Set when an event is committed: LISTEN on PostgreSQL, plain polling elsewhere.

    A listener thread holds one connection to the direct URL; if it drops, polling carries on
    alone and the listener reconnects. A pooler in transaction mode (PgBouncer) accepts LISTEN
    and then hands the server connection to other clients, so the listener first checks that
    a NOTIFY of its own reaches it, and leaves the waking to polling when none does.
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
        while not self.stopping.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None) as conn:
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
                    while not self.stopping.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.flag.set()
            except psycopg.Error as exc:
                log.warning("event listener lost its connection", extra={"error": repr(exc)})
            self.listening.clear()
            self.stopping.wait(1.0)

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
    """Runs until stopped; several workers (processes) may run at once on PostgreSQL."""

    def __init__(self, settings: WorkerSettings, sessions: sessionmaker[Session], secret: str):
        self.settings = settings
        self.sessions = sessions
        self.key = signing.secret_bytes(secret)
        self.stopping = threading.Event()
        self.client = httpx.Client(
            timeout=settings.webhook_timeout_seconds,
            follow_redirects=False,
            headers={"user-agent": "tessera-webhooks/1"},
        )
        self.pool = ThreadPoolExecutor(settings.webhook_concurrency, "webhook")
        self.wakeup = Wakeup(settings.effective_direct_url)

    def stop(self) -> None:
        """Finish the batch in hand, then return from `run`."""
        self.stopping.set()
        self.wakeup.set()

    def run(self) -> None:
        """Poll, deliver, repeat; idle waits at most `webhook_poll_seconds`."""
        url = self.settings.webhook_url
        if url is None:
            log.warning("WEBHOOK_URL is not set: events are kept and not sent")
        last_gauge = 0.0
        while not self.stopping.is_set():
            if time.monotonic() - last_gauge > 5:
                self._update_gauges()
                last_gauge = time.monotonic()
            busy = url is not None and self.run_once(url) >= self.settings.webhook_batch_size
            if not busy and not self.stopping.is_set():
                self.wakeup.wait(self.settings.webhook_poll_seconds)
        self.pool.shutdown(wait=True)
        self.wakeup.close()
        self.client.close()

    def run_once(self, url: str) -> int:
        """One claim-and-deliver round; returns how many events were attempted.

        The posts go out in parallel; their outcomes are then recorded in one transaction
        (one commit per round, not per event). A crash in between only means those events
        are sent again after their lease, which at-least-once delivery allows.
        """
        with self.sessions() as session:
            if outbox.endpoint_disabled(session, url) is not None:
                return 0
            lease = timedelta(seconds=self.settings.lease_seconds)
            events = outbox.claim(session, self.settings.webhook_batch_size, lease)
        if not events:
            return 0
        gone = threading.Event()  # a 410 in this batch: send nothing more of it
        outcomes = list(self.pool.map(lambda event: self._attempt(url, event, gone), events))
        now = utcnow()
        with self.sessions() as session:
            for event, outcome in zip(events, outcomes, strict=True):
                self._record(session, url, event, outcome, now)
            session.commit()
        return len(events)

    def _attempt(self, url: str, event: Event, gone: threading.Event) -> Outcome | None:
        """Post one event; None when the batch was stopped by a 410 before its turn."""
        if gone.is_set():
            return None
        outcome = attempt(self.client, url, self.key, event)
        if outcome.gone:
            gone.set()
        return outcome

    def _record(
        self, session: Session, url: str, event: Event, outcome: Outcome | None, now: datetime
    ) -> None:
        if outcome is None:
            outbox.release(session, event)
        elif outcome.ok:
            outbox.delivered(session, event, outcome.status or 200, now)
            ATTEMPTS.labels("delivered").inc()
            DELIVERED.inc()
            LATENCY.observe((now - event.created_at).total_seconds())
        elif outcome.gone:
            outbox.disable_endpoint(session, url, f"{url} answered 410 Gone", now)
            outbox.release(session, event)
            ATTEMPTS.labels("gone").inc()
            log.error(
                "webhook endpoint answered 410: deliveries stopped until re-enabled",
                extra={"event_id": str(event.id)},
            )
        else:
            self._schedule_retry(session, event, outcome, now)

    def _schedule_retry(
        self, session: Session, event: Event, outcome: Outcome, now: datetime
    ) -> None:
        settings = self.settings
        delay = outcome.retry_after
        if delay is None:
            delay = backoff(
                event.attempts,
                settings.webhook_backoff_base_seconds,
                settings.webhook_backoff_cap_seconds,
            )
        deadline = event.retry_until or (
            event.created_at + timedelta(seconds=settings.webhook_retry_for_seconds)
        )
        give_up = now >= deadline
        again = None if give_up else now + timedelta(seconds=delay)
        outbox.retry_later(session, event, outcome.status, outcome.error, again)
        ATTEMPTS.labels("failed").inc()
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
        except Exception:  # metrics must never stop deliveries
            log.warning("could not count events", exc_info=True)
