"""`python -m certificate_api.serve`: workers with a listening socket each, supervised."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.services import connection_owners
from schema.db import normalize_url
from tests.conftest import SERVER_URL, free_port, postgres_only, wait_until_up
from tests.test_run import alive, descendants


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    url: str
    log: Path

    def workers(self) -> set[int]:
        return {pid for pid in descendants(self.proc.pid) if _is_worker(pid)}


def _is_worker(pid: int) -> bool:
    """A spawned worker (not multiprocessing's resource tracker)."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def start(
    database_url: str, var_dir: Path, workers: int, port: int | None = None, **env_vars: str
) -> Served:
    port = port or free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "VAR_DIR": str(var_dir),
        "KEY_POOL_FILL_ON_START": "false",
        "NAME_AUTHORIZATION": "open",
        **env_vars,
    }
    log = var_dir / f"serve-{port}-{time.monotonic_ns()}.log"
    var_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "certificate_api.serve", "--workers", str(workers)]
    command += ["--port", str(port), "--timeout-graceful-shutdown", "5"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own, for clean-up
        )
    return Served(proc, port, f"http://127.0.0.1:{port}", log)


def stop(service: Served) -> None:
    """Kill whatever is left of it: the supervisor and every process in its group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(service.proc.pid, signal.SIGKILL)
    service.proc.wait()


def up(service: Served) -> Served:
    """Once every worker has started (a worker killed before that stops the service)."""
    wait_until_up(service.url, service.proc, 60)
    deadline = time.monotonic() + 60
    while b"workers ready" not in service.log.read_bytes():
        assert time.monotonic() < deadline, service.log.read_text()
        time.sleep(0.1)
    return service


@pytest.fixture
def served(databases: Any, tmp_path: Path) -> Iterator[Served]:
    service = start(databases.create(), tmp_path / "var", workers=2)
    try:
        yield up(service)
    finally:
        stop(service)


def open_connections(port: int, count: int) -> list[socket.socket]:
    """Keep-alive connections, each having had one answer (so a worker has accepted it)."""
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        held.append(sock)
    return held


def test_each_worker_listens_and_accepts_on_a_socket_of_its_own(served: Served) -> None:
    workers = served.workers()
    assert len(workers) == 2
    listening = subprocess.run(
        ["ss", "-tlnpH", f"( sport = :{served.port} )"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(listening) == 2  # two sockets on one port, not one shared

    held = open_connections(served.port, 32)
    try:
        owners = connection_owners(served.port)
        assert len(owners) == 32
        assert set(owners) == workers  # both accept: all 32 on one would be odds of 2^-31
    finally:
        for sock in held:
            sock.close()


def test_a_worker_that_dies_is_replaced_and_no_connection_is_refused(served: Served) -> None:
    victim = min(served.workers())
    os.kill(victim, signal.SIGKILL)
    # New connections, half of them hashed to the dead worker's socket: they wait in its
    # backlog until the replacement accepts them.
    with httpx.Client(timeout=60) as client:
        for _ in range(20):
            assert client.get(served.url + "/healthz", headers={"Connection": "close"}).is_success
    deadline = time.monotonic() + 30
    while len(served.workers()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert victim not in served.workers()
    assert len(served.workers()) == 2
    assert b"died" in served.log.read_bytes()


def test_sigterm_stops_every_worker_and_exits_cleanly(served: Served) -> None:
    started = descendants(served.proc.pid)
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 0
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in started if alive(pid)]


def test_a_worker_that_cannot_start_stops_the_service_with_its_code(
    databases: Any, tmp_path: Path
) -> None:
    service = start(databases.create(migrate=False), tmp_path / "var", workers=2)
    try:
        assert service.proc.wait(timeout=60) == 3  # Uvicorn's start-up failure
    finally:
        stop(service)
    assert b"could not start" in service.log.read_bytes()


def test_bad_settings_stop_the_service_instead_of_restarting_forever(
    databases: Any, tmp_path: Path
) -> None:
    service = start(databases.create(), tmp_path / "var", workers=2, KEY_POOL_SIZES="{bad")
    try:
        assert service.proc.wait(timeout=60) not in (0, None)
    finally:
        stop(service)
    log = service.log.read_bytes()
    assert b"could not start" in log
    assert b"replacing" not in log


def test_a_second_instance_on_the_same_port_is_refused(
    served: Served, databases: Any, tmp_path: Path
) -> None:
    second = start(databases.create(), tmp_path / "other", workers=2, port=served.port)
    try:
        assert second.proc.wait(timeout=30) == 3
    finally:
        stop(second)
    assert b"Cannot listen" in second.log.read_bytes()
    assert httpx.get(served.url + "/healthz").is_success  # the first one is untouched


def test_workers_stop_when_the_supervisor_is_killed(served: Served) -> None:
    workers = served.workers()
    served.proc.send_signal(signal.SIGKILL)
    served.proc.wait()
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if alive(pid)]


@postgres_only
def test_a_replacement_that_cannot_start_is_retried_and_the_others_keep_serving(
    databases: Any, tmp_path: Path
) -> None:
    url = databases.create()
    name = make_url(url).database
    service = up(start(url, tmp_path / "var", workers=2))
    admin = create_engine(normalize_url(SERVER_URL), isolation_level="AUTOCOMMIT")
    try:
        survivor, victim = sorted(service.workers())
        with admin.connect() as conn:  # new connections refused; open ones go on
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while b"stopped before it was ready" not in service.log.read_bytes():
            assert time.monotonic() < deadline, service.log.read_text()
            time.sleep(0.2)
        assert service.proc.poll() is None and alive(survivor)

        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        deadline = time.monotonic() + 30
        while len(service.workers()) < 2 or not _all_answer(service):
            assert time.monotonic() < deadline, service.log.read_text()
            time.sleep(0.5)
        assert survivor in service.workers()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
        stop(service)


def _all_answer(service: Served) -> bool:
    """Fresh connections, hashed over every socket, each answered."""
    try:
        with httpx.Client(timeout=2) as client:
            return all(
                client.get(service.url + "/healthz", headers={"Connection": "close"}).is_success
                for _ in range(16)
            )
    except httpx.HTTPError:
        return False
