"""The certificate service under Gunicorn, started as `make run` starts it: Uvicorn workers,
a listening socket each, and a port no second instance can share."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.services import connection_owners
from ca_admin.run import metrics_env, service_commands
from schema.settings import CommonSettings
from tests.conftest import free_port, wait_until_up
from tests.test_run import alive, descendants


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    url: str
    log: Path

    def listeners(self) -> list[int]:
        """The process holding each listening socket on the port (from `ss`)."""
        listing = subprocess.run(
            ["ss", "-tlnpH", f"( sport = :{self.port} )"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [int(line.split("pid=")[1].split(",")[0]) for line in listing.splitlines()]


def start(database_url: str, var_dir: Path, port: int | None = None) -> Served:
    """`ca-admin run`'s certificate-service command with two workers."""
    port = port or free_port()
    settings = CommonSettings(_env_file=None, certificate_api_port=port)
    command = service_commands(settings, 2)["certificate-api"]
    var_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "VAR_DIR": str(var_dir),
        "KEY_POOL_FILL_ON_START": "false",
        **metrics_env(var_dir, f"certificate-api-{port}"),
    }
    log = var_dir / f"serve-{port}-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Served(proc, port, f"http://127.0.0.1:{port}", log)


def stop(service: Served) -> None:
    """Kill whatever is left of it: the master and every process in its group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(service.proc.pid, signal.SIGKILL)
    service.proc.wait()


def wait_for_listeners(service: Served, count: int) -> list[int]:
    deadline = time.monotonic() + 120
    while len(owners := service.listeners()) != count:
        assert time.monotonic() < deadline, service.log.read_text()
        time.sleep(0.1)
    return owners


@pytest.fixture
def served(databases: Any, tmp_path: Path) -> Iterator[Served]:
    service = start(databases.create(), tmp_path / "var")
    try:
        wait_until_up(service.url, service.proc, 120)
        wait_for_listeners(service, 2)
        yield service
    finally:
        stop(service)


def test_each_worker_listens_and_accepts_on_a_socket_of_its_own(served: Served) -> None:
    listeners = served.listeners()
    assert len(listeners) == 2  # two sockets on one port, not one shared
    assert len(set(listeners)) == 2 and served.proc.pid not in listeners  # one per worker
    held = []
    try:
        for _ in range(32):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=10)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            held.append(sock)
        owners = connection_owners(served.port)
        assert len(owners) == 32
        assert set(owners) == set(listeners)  # both accept: all 32 on one: odds of 2^-31
    finally:
        for sock in held:
            sock.close()


def test_a_second_instance_on_the_same_port_is_refused(
    served: Served, databases: Any, tmp_path: Path
) -> None:
    before = sorted(served.listeners())
    second = start(databases.create(), tmp_path / "other", port=served.port)
    try:
        assert second.proc.wait(timeout=60) == 3
    finally:
        stop(second)
    assert b"Cannot listen" in second.log.read_bytes()
    assert sorted(served.listeners()) == before  # no worker of the second joined the port
    assert httpx.get(served.url + "/healthz").is_success


def test_a_killed_worker_is_replaced_by_one_with_a_socket_of_its_own(served: Served) -> None:
    victim, survivor = served.listeners()
    os.kill(victim, signal.SIGKILL)
    with httpx.Client(timeout=60) as client:  # the survivor answers meanwhile
        for _ in range(10):
            assert client.get(served.url + "/healthz", headers={"Connection": "close"}).is_success
    deadline = time.monotonic() + 120
    while True:
        listeners = served.listeners()
        if len(listeners) == 2 and victim not in listeners:
            break
        assert time.monotonic() < deadline, served.log.read_text()
        time.sleep(0.1)
    assert survivor in listeners
    assert served.proc.poll() is None


def test_sigterm_stops_every_worker_and_exits_cleanly(served: Served) -> None:
    started = descendants(served.proc.pid)
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=60) == 0
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in started if alive(pid)]


def test_a_worker_that_cannot_start_stops_the_service(databases: Any, tmp_path: Path) -> None:
    service = start(databases.create(migrate=False), tmp_path / "var")
    try:
        # 3 ("Worker failed to boot"), or 1 when the second worker's failure is reaped while
        # Gunicorn is already halting for the first: either way `ca-admin run` stops.
        assert service.proc.wait(timeout=90) in (1, 3)
    finally:
        stop(service)
    assert b"exited with code 3" in service.log.read_bytes()
