"""Periodic jobs of the worker process (retention now; more kinds of upkeep later).

Jobs run one after another in one thread of their own, beside the delivery loop, so a long
job never delays deliveries. A job that raises is logged and tried again after
`RETRY_SECONDS` (or its own interval, when shorter); it never stops the others or the worker.
To add one: `Job("name", every_seconds, function)` in `Worker.jobs`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

RETRY_SECONDS = 60.0


@dataclass
class Job:
    """A function run every `every` seconds, first at start. It should return within a
    few seconds of `stopping` being set (e.g. check it between batches)."""

    name: str
    every: float
    run: Callable[[threading.Event], object]
    due: float = 0.0


def database_error_text(exc: SQLAlchemyError) -> str:
    """The driver's message without SQLAlchemy's statement and parameters, for logs."""
    cause = getattr(exc, "orig", None) or exc
    first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {first_line}"[:300]


class Schedule:
    """Runs jobs when due, in a daemon thread, until stopped."""

    def __init__(self, jobs: Sequence[Job]) -> None:
        self.jobs = list(jobs)
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (nothing to do without jobs)."""
        if self.jobs:
            self.thread = threading.Thread(target=self._loop, name="worker-jobs", daemon=True)
            self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the running job to finish and wait for the thread."""
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def run_due(self) -> None:
        """Run every job whose time has come, once."""
        for job in self.jobs:
            if self.stopping.is_set() or time.monotonic() < job.due:
                continue
            try:
                job.run(self.stopping)
            except SQLAlchemyError as exc:  # the database away: the next try will do
                log.warning(
                    "periodic job failed",
                    extra={"job": job.name, "error": database_error_text(exc)},
                )
                job.due = time.monotonic() + min(job.every, RETRY_SECONDS)
            except Exception:
                log.exception("periodic job failed", extra={"job": job.name})
                job.due = time.monotonic() + min(job.every, RETRY_SECONDS)
            else:
                job.due = time.monotonic() + job.every

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self.run_due()
            wait = min(job.due for job in self.jobs) - time.monotonic()
            self.stopping.wait(max(0.05, wait))
