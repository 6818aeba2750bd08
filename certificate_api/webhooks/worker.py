"""The delivery worker: claim due events, sign, POST, and settle each attempt."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.orm import Session, sessionmaker

from certificate_api.webhooks import outbox, signing
from certificate_api.webhooks.settings import WorkerSettings
from schema.base import utcnow
from schema.events import Event

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

    def stop(self) -> None:
        """Finish the batch in hand, then return from `run`."""
        self.stopping.set()

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
            if not busy:
                self.stopping.wait(self.settings.webhook_poll_seconds)
        self.pool.shutdown(wait=True)
        self.client.close()

    def run_once(self, url: str) -> int:
        """One claim-and-deliver round; returns how many events were attempted."""
        with self.sessions() as session:
            if outbox.endpoint_disabled(session, url) is not None:
                return 0
            lease = timedelta(seconds=self.settings.lease_seconds)
            events = outbox.claim(session, self.settings.webhook_batch_size, lease)
        if events:
            gone = threading.Event()  # a 410 in this batch: send nothing more of it
            list(self.pool.map(lambda event: self._deliver(url, event, gone), events))
        return len(events)

    def _deliver(self, url: str, event: Event, gone: threading.Event) -> None:
        if gone.is_set():
            with self.sessions() as session:
                outbox.release(session, event)
                session.commit()
            return
        outcome = attempt(self.client, url, self.key, event)
        now = utcnow()
        with self.sessions() as session:
            if outcome.ok:
                outbox.delivered(session, event, outcome.status or 200, now)
                ATTEMPTS.labels("delivered").inc()
                DELIVERED.inc()
                LATENCY.observe((now - event.created_at).total_seconds())
            elif outcome.gone:
                gone.set()
                outbox.disable_endpoint(session, url, f"{url} answered 410 Gone", now)
                outbox.release(session, event)
                ATTEMPTS.labels("gone").inc()
                log.error(
                    "webhook endpoint answered 410: deliveries stopped until re-enabled",
                    extra={"event_id": str(event.id)},
                )
            else:
                self._schedule_retry(session, event, outcome, now)
            session.commit()

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
        outbox.retry_later(
            session, event, outcome.status, outcome.error, now + timedelta(seconds=delay), give_up
        )
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
