"""One delivery attempt against a receiver we do not control.

Whatever the receiver does (a bogus header, a body without end, a broken status line, a
reset, a hang, headers trickled a byte at a time) ends as an `Outcome` within the attempt's
deadline; nothing it sends can raise out of here. The posts of a batch run concurrently on
one event loop with aiohttp, whose total timeout bounds the whole exchange (a timeout per
socket read, as in httpx, lets a receiver that trickles bytes hold an attempt for days).
aiohttp rather than httpx's AsyncClient: on the webhook bench the latter posted about ten
times slower than aiohttp, and slower than the threads it replaced.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import aiohttp
import httpx

from schema.base import utcnow
from schema.events import Event
from worker import signing

log = logging.getLogger(__name__)

# A receiver's answer body is read this far (so the connection can be kept alive) and no
# further: it is never used, and a 10 MB or endless one must not cost more than this.
ANSWER_BYTES_READ = 64 * 1024
_DELTA_SECONDS = re.compile(r"[0-9]+")  # ASCII digits only: "²".isdigit() is True
# Beyond any retry window; longer digit strings are not even converted (int() refuses
# more than 4300 digits, and float() overflows long before).
_FOREVER_SECONDS = 1e12


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to."""

    ok: bool
    status: int | None
    error: str
    retry_after: float | None = None
    gone: bool = False


def redact_url(url: str) -> str:
    """The URL without user info, query or fragment: what may be logged or stored."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid url>"
    hidden = "?[redacted]" if parsed.query or parsed.fragment or parsed.userinfo else ""
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii')}{parsed.path}{hidden}"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None when unusable.

    Any text a receiver sends is accepted here without raising; the caller clamps the
    result to the retry window.
    """
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value) if len(value) <= 12 else _FOREVER_SECONDS
    try:
        moment = email.utils.parsedate_to_datetime(value)
        seconds = (moment - now).total_seconds()
    except (TypeError, ValueError, OverflowError, IndexError):
        # parsedate_to_datetime raises for garbage and gives a naive datetime for "-0000",
        # which cannot be subtracted from an aware one.
        return None
    return max(0.0, seconds)


def _describe(exc: BaseException, url: str) -> str:
    """An error text for the event row and the log: the exception's kind and message,
    never the URL's query (aiohttp puts the full URL in some messages)."""
    text = exc.message if isinstance(exc, aiohttp.ClientResponseError) else str(exc)
    text = " ".join(text.replace(url, redact_url(url)).split())
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


async def _skim(response: aiohttp.ClientResponse) -> None:
    """Read the answer body up to ANSWER_BYTES_READ; past that, drop the connection rather
    than keep it for the next post."""
    received = 0
    async for chunk in response.content.iter_chunked(16 * 1024):
        received += len(chunk)
        if received > ANSWER_BYTES_READ:
            response.close()
            return


class Poster:
    """Posts events on an event loop of its own; used from one thread at a time."""

    def __init__(self, key: bytes, timeout: float, concurrency: int) -> None:
        self.key = key
        self.deadline = timeout
        self.concurrency = concurrency
        self.loop = asyncio.new_event_loop()
        self.session: aiohttp.ClientSession | None = None  # made on the loop, at first use

    def post_batch(self, url: str, events: Sequence[Event]) -> list[Outcome | None]:
        """Post every event, `concurrency` at a time. After a 410 the events not yet sent
        come back as None (not attempted)."""
        return self.loop.run_until_complete(self._post_batch(url, events))

    def close(self) -> None:
        """Close the connections and the loop."""
        if self.session is not None:
            self.loop.run_until_complete(self.session.close())
        self.loop.close()

    async def _post_batch(self, url: str, events: Sequence[Event]) -> list[Outcome | None]:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency),
                timeout=aiohttp.ClientTimeout(total=self.deadline),
                headers={"user-agent": "tessera-webhooks/1"},
                auto_decompress=False,
            )
        slots = asyncio.Semaphore(self.concurrency)
        gone = False

        async def one(event: Event) -> Outcome | None:
            nonlocal gone
            async with slots:
                if gone:
                    return None
                outcome = await self.attempt(url, event)
                gone = gone or outcome.gone
                return outcome

        return list(await asyncio.gather(*(one(event) for event in events)))

    async def attempt(self, url: str, event: Event) -> Outcome:
        """POST the event once, signed now (a retry hours later still verifies)."""
        body = json.dumps(event.payload, separators=(",", ":")).encode()
        headers = signing.headers(self.key, str(event.id), int(time.time()), body)
        status: int | None = None
        retry_after: str | None = None
        assert self.session is not None
        try:
            async with (
                asyncio.timeout(self.deadline),  # also over aiohttp's own, to be sure
                self.session.post(
                    url, data=body, headers=headers, allow_redirects=False
                ) as response,
            ):
                status, retry_after = response.status, response.headers.get("retry-after")
                await _skim(response)
        except TimeoutError:
            if status is None:
                return Outcome(False, None, f"no answer within {self.deadline:g} s")
        except aiohttp.ClientError as exc:
            if status is None:
                return Outcome(False, None, _describe(exc, url))
        except Exception as exc:  # a receiver must never stop the worker, whatever it sends
            log.warning("unexpected error posting an event", extra={"error": type(exc).__name__})
            if status is None:
                return Outcome(False, None, _describe(exc, url))
        if status is None:  # every path above without a status has returned
            return Outcome(False, None, "no answer")
        # The status line decides; a body cut short after it changes nothing.
        if 200 <= status < 300:
            return Outcome(True, status, "")
        delay = parse_retry_after(retry_after, utcnow()) if status in (429, 503) else None
        return Outcome(False, status, f"HTTP {status}", delay, gone=status == 410)
