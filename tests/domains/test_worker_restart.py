"""A validation survives a worker killed in the middle of it: the real `ca-admin worker`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Customer
from tests.domains.conftest import Domains
from tests.domains.servers import Route, wait_for
from tests.domains.test_validation import events_of, token_path


@pytest.fixture
def start_worker(
    database_url: str, var_dir: Path, settings: Any, tmp_path: Path
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "VAR_DIR": str(var_dir),
        "VALIDATION_HTTP_PORT": str(settings.validation_http_port),
        "VALIDATION_DNS_SERVERS": settings.validation_dns_servers,
        "VALIDATION_DENY_NETWORKS": "",
        "VALIDATION_TIMEOUT_SECONDS": "2",  # so a killed worker's lease ends in 9 s
        "WEBHOOK_URL": "",
    }
    procs: list[subprocess.Popen[bytes]] = []
    log = (tmp_path / "worker.log").open("ab")

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ca_admin.cli", "worker"], env=env, stdout=log, stderr=log
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    log.close()


def test_validation_asked_before_a_worker_crash_completes_after_restart(
    make_customer: Callable[..., Customer],
    domains: Domains,
    engine: Any,
    start_worker: Callable[[], subprocess.Popen[bytes]],
) -> None:
    customer = make_customer()
    authz = domains.create(customer, f"crash-{uuid.uuid4().hex[:8]}.test")
    arrived, released = threading.Event(), threading.Event()
    key_auth = authz["challenges"][0]["key_authorization"].encode()

    def first_attempt_hangs(_host: str) -> None:
        if not arrived.is_set():
            arrived.set()
            released.wait(60)

    domains.server.routes[token_path(authz)] = Route(body=key_auth, before=first_attempt_hangs)
    asked = domains.client.post(
        f"/api/domains/{authz['id']}/validate", json={"type": "http-01"}, headers=customer.auth
    )
    assert asked.status_code == 202
    first = start_worker()
    wait_for(arrived.is_set)  # the worker has claimed it and is checking
    first.kill()  # SIGKILL: no clean-up of any kind
    first.wait()
    released.set()
    assert domains.get(customer, authz["id"])["status"] == "pending"
    assert events_of(engine, authz["id"]) == []

    start_worker()
    done = wait_for(
        lambda: (d := domains.get(customer, authz["id"]))["status"] != "pending" and d, 60
    )
    assert done["status"] == "valid", done
    assert [e["type"] for e in events_of(engine, authz["id"])] == ["domain.validated"]
