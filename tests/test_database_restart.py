"""A PostgreSQL restart under load: the product rides it out and loses no event.

Both services and the worker run under `ca-admin run` against a cluster of the test's own;
certificates are issued without pause while the worker is busy retrying (the receiver
fails every event's first attempt); PostgreSQL is stopped (fast: every session ended at
once) and started again. Afterwards every process is the one started before, both services
answer, the worker listens again, and every acknowledged certificate's event reached the
receiver.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import FAST_ARGON2, free_port, unique_email, wait_until_up
from tests.pgcluster import Cluster
from tests.test_run import children_by_role
from tests.webhooks.receiver import Delivery, Receiver


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    own = Cluster()
    try:
        own.start()
        with psycopg.connect(own.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE tessera")
        yield own
    finally:
        own.destroy()


class FlakyReceiver:
    """Fails each event's first attempt (so the worker always has retries in hand)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tries: Counter[str] = Counter()
        self.accepted: Counter[str] = Counter()  # 2xx answers per webhook-id
        self.certificates: set[str] = set()
        self.server = Receiver(answer=self.answer).start()

    def answer(self, delivery: Delivery) -> tuple[int, dict[str, str], float]:
        with self.lock:
            self.tries[delivery.event_id] += 1
            if self.tries[delivery.event_id] == 1:
                return 503, {}, 0.0
            self.accepted[delivery.event_id] += 1
            if delivery.payload["type"] == "certificate.created":
                self.certificates.add(delivery.payload["data"]["certificate_id"])
            return 204, {}, 0.0

    def retried(self) -> int:
        with self.lock:
            return sum(1 for count in self.tries.values() if count > 1)


class Load:
    """Threads issuing certificates without pause; keeps what was acknowledged (201)."""

    def __init__(self, url: str, token: str, threads: int = 4) -> None:
        self.url, self.token = url, token
        self.acknowledged: list[str] = []
        self.refused = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        auth = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=auth, timeout=30) as client:
            while not self.stopping.is_set():
                try:
                    reply = client.post("/api/certificates", json={"common_name": "load.example"})
                except httpx.HTTPError:
                    reply = None
                with self.lock:
                    if reply is not None and reply.status_code == 201:
                        self.acknowledged.append(reply.json()["id"])
                    else:
                        self.refused += 1

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return len(self.acknowledged), self.refused

    def stop(self) -> list[str]:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)
        return list(self.acknowledged)


def wait(condition: Any, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not reached in {seconds} s: {what}")


def listening(cluster: Cluster) -> bool:
    with psycopg.connect(cluster.url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN tessera_events%'"
        ).fetchone()
    return bool(row and row[0])


@pytest.mark.slow  # about 80 s; CI runs it (the suite deselects nothing)
def test_a_database_restart_under_load_stops_nothing_and_loses_no_event(
    cluster: Cluster, tmp_path: Path
) -> None:
    started = time.monotonic()
    receiver = FlakyReceiver()
    account_port, certificate_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": cluster.url.rsplit("/", 1)[0] + "/tessera",
        "VAR_DIR": str(tmp_path / "var"),
        "ACCOUNT_API_PORT": str(account_port),
        "CERTIFICATE_API_PORT": str(certificate_port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{certificate_port}",
        "ACCOUNT_API_URL": f"http://127.0.0.1:{account_port}",
        "WEB_CONCURRENCY": "1",
        "KEY_POOL_FILL_ON_START": "false",
        "NAME_AUTHORIZATION": "open",  # names are not what this test is about
        "WEBHOOK_URL": receiver.server.url,
        "WEBHOOK_POLL_SECONDS": "0.2",
        "WEBHOOK_BACKOFF_BASE_SECONDS": "0.2",
        "WEBHOOK_BACKOFF_CAP_SECONDS": "2",
        **{key.upper(): str(value) for key, value in FAST_ARGON2.items()},
    }
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "ca_admin.cli", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    accounts = f"http://127.0.0.1:{account_port}"
    certs = f"http://127.0.0.1:{certificate_port}"
    load: Load | None = None
    try:
        wait_until_up(accounts, run, 90)
        wait_until_up(certs, run, 90)
        processes = children_by_role(run.pid)
        email, password = unique_email("outage"), "long enough pw"
        httpx.post(
            f"{accounts}/api/accounts", json={"email": email, "password": password, "name": "O"}
        ).raise_for_status()
        token = httpx.post(
            f"{accounts}/api/auth/token", json={"email": email, "password": password}
        ).json()["access_token"]

        load = Load(certs, token)
        wait(lambda: load.counts()[0] >= 50 and receiver.retried() >= 10, "load and retries")
        acknowledged_before, refused_before = load.counts()
        cluster.stop("fast")
        # Down until the load has seen it (refusals), then up again.
        wait(lambda: load.counts()[1] >= refused_before + 20, "refusals during the outage")
        cluster.start()
        restarted = load.counts()[0]
        wait(lambda: load.counts()[0] >= restarted + 50, "issuance after the restart")
        acknowledged, refused = load.stop(), load.refused
        load = None

        assert run.poll() is None, "ca-admin run stopped"
        assert children_by_role(run.pid) == processes, "a process died and was replaced"
        for base in (accounts, certs):
            # A pool's connections from before the restart fail once (503) and are replaced.
            wait(lambda: httpx.get(f"{base}/readyz", timeout=10).status_code == 200, base)  # noqa: B023
        login = httpx.post(
            f"{accounts}/api/auth/token", json={"email": email, "password": password}
        )
        assert login.status_code == 200
        wait(lambda: listening(cluster), "the worker's LISTEN connection back")
        missing = lambda: set(acknowledged) - receiver.certificates  # noqa: E731
        wait(lambda: not missing(), "every acknowledged certificate's event delivered")
        with httpx.Client(base_url=certs, headers={"Authorization": f"Bearer {token}"}) as client:
            for cert_id in acknowledged:
                assert client.get(f"/api/certificates/{cert_id}").status_code == 200
        duplicates = sum(count - 1 for count in receiver.accepted.values())
        print(
            f"\noutage test: {time.monotonic() - started:.0f} s; certificates acknowledged "
            f"{len(acknowledged)} ({acknowledged_before} before the stop); requests refused "
            f"{refused}; events delivered "
            f"{len(receiver.accepted)}; duplicate deliveries {duplicates}"
        )
        os.killpg(run.pid, signal.SIGINT)
        assert run.wait(timeout=90) == 0
        # The worker did meet the outage (and went on): the path under test was taken.
        assert "database unavailable; retrying" in log_path.read_text()
    finally:
        if load is not None:
            load.stop()
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        receiver.server.stop()
