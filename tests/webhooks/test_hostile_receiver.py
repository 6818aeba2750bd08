"""Whatever a receiver answers, it is one failed attempt: the worker records it and goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from schema import keyfiles
from schema.db import make_engine
from schema.events import Event
from tests.webhooks.conftest import World
from tests.webhooks.hostile import PLAYS, HostileReceiver
from tests.webhooks.test_processes import seed_events
from worker.settings import WorkerSettings

# A clamped Retry-After brings the next try within it. Generous, so that a loaded machine
# never sees a window close before the test's next step: the tests wait on a new event.
RETRY_WINDOW = 60.0


@pytest.fixture
def world(databases: Any, tmp_path: Path) -> Iterator[World]:
    """A database and a worker's secret; these tests need neither service."""
    url = databases.create()
    engine = make_engine(url)
    settings = WorkerSettings(_env_file=None, database_url=url, var_dir=tmp_path)  # type: ignore[call-arg]
    yield World(url, tmp_path, engine, None, None, keyfiles.webhook_secret(settings))
    engine.dispose()


def event_rows(world: World) -> list[Any]:
    with world.engine.connect() as conn:
        return list(conn.execute(select(Event).order_by(Event.seq)).all())


def wait_for_rows(world: World, predicate: Any, seconds: float = 60) -> list[Any]:
    """Until every event row satisfies `predicate`."""
    deadline = time.monotonic() + seconds
    rows: list[Any] = []
    while time.monotonic() < deadline:
        rows = event_rows(world)
        if rows and all(predicate(row) for row in rows):
            return rows
        time.sleep(0.05)
    raise AssertionError(f"events not as expected: {[(r.state, r.attempts) for r in rows]}")


def wait_delivered(world: World, event_ids: set[str], seconds: float = 60) -> None:
    """Until these events are delivered: the worker is still at work."""
    wait_for_rows(
        world, lambda row: str(row.id) not in event_ids or row.state == "delivered", seconds
    )


@pytest.mark.parametrize("play", sorted(PLAYS))
def test_a_hostile_answer_is_a_failed_attempt_and_the_worker_goes_on(
    world: World, run_worker: Any, play: str
) -> None:
    receiver = HostileReceiver(PLAYS[play])
    try:
        seed_events(world, subjects=2, per_subject=1)
        run_worker(
            receiver.url, webhook_timeout_seconds=1.0, webhook_retry_for_seconds=RETRY_WINDOW
        )
        for row in wait_for_rows(world, lambda row: row.attempts >= 1):
            assert row.state == "pending", row.last_error
            assert row.last_status is not None or row.last_error
            # Retry-After, however absurd, never puts the next try past the retry window.
            assert row.next_attempt_at <= row.created_at + timedelta(seconds=RETRY_WINDOW + 1)
        receiver.behave()
        later = seed_events(world, subjects=1, per_subject=1)
        wait_delivered(world, {eid for ids in later.values() for eid in ids})
    finally:
        receiver.stop()


def test_the_worker_process_outlives_bad_retry_after_and_never_logs_the_webhook_query(
    world: World, tmp_path: Path
) -> None:
    receiver = HostileReceiver(PLAYS["superscript retry-after"])
    secret_query = "token=hook-credential-8c1f"
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": world.database_url,
        "VAR_DIR": str(world.var_dir),
        "WEBHOOK_URL": f"{receiver.url}?{secret_query}",
        "WEBHOOK_POLL_SECONDS": "0.05",
        "WEBHOOK_BACKOFF_BASE_SECONDS": "0.05",
        "WEBHOOK_BACKOFF_CAP_SECONDS": "0.2",
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "WEBHOOK_RETRY_FOR_SECONDS": str(RETRY_WINDOW),
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ca_admin.cli", "worker"], env=env, stderr=log
        )
    try:
        seed_events(world, subjects=2, per_subject=1)
        wait_for_rows(world, lambda row: row.attempts >= 1)
        receiver.play = PLAYS["huge retry-after"]
        wait_for_rows(world, lambda row: row.attempts >= 2 and row.last_status == 503)
        assert proc.poll() is None, "the worker exited"
        receiver.behave()
        later = seed_events(world, subjects=1, per_subject=1)
        wait_delivered(world, {eid for ids in later.values() for eid in ids})
        assert proc.poll() is None, "the worker exited"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        receiver.stop()
    text = log_path.read_text()
    assert "hook-credential-8c1f" not in text
    assert f"127.0.0.1:{receiver.port}/hook" in text  # the URL is named, redacted
    for row in event_rows(world):
        assert "hook-credential" not in (row.last_error or "")
