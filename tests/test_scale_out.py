"""Several instances on one machine behind HAProxy, one PostgreSQL through PgBouncer: one
instance of each service and one worker SIGKILLed under load lose nothing.

Two account-service instances (Gunicorn), two certificate-service instances
(Gunicorn with Uvicorn workers), two webhook workers, all on the pooled DATABASE_URL with
DATABASE_DIRECT_URL for LISTEN. Clients go through HAProxy only and retry a failed request
(same Idempotency-Key), as a real client would. Shown: every acknowledged (201) certificate
is stored and served, every event reaches the receiver (duplicates allowed, losses not),
the proxy takes the dead instances out and serves every later request from the others, and
/readyz of the survivors answers 200 throughout.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from standardwebhooks import Webhook

from bench.pgbouncer import SMALL_SERVER, PgBouncer
from ca_admin.run import metrics_env, service_commands
from schema import keyfiles
from schema.settings import CommonSettings
from tests.conftest import (
    DIRECT_SERVER_URL,
    FAST_ARGON2,
    Databases,
    free_port,
    postgres_only,
    wait_until_up,
)
from tests.webhooks.receiver import Receiver

pytestmark = [postgres_only, pytest.mark.slow]
if shutil.which("haproxy") is None and not os.environ.get("CI"):
    pytestmark.append(pytest.mark.skip(reason="haproxy not installed"))

CUSTOMERS = 6
ISSUANCES = 240  # through the proxy, 6 at a time; the kills come after KILL_AFTER of them
KILL_AFTER = 80
AFTER_DOWN = 30  # requests sent once HAProxy marks the dead instances down: all must pass


def haproxy_config(
    accounts: tuple[int, list[int]], certificates: tuple[int, list[int]], sock: Path
) -> str:
    """Round robin over each service's instances, health-checked on /readyz; a request
    whose connection fails is sent again to another instance."""
    lines = [
        "global",
        f"  stats socket {sock} mode 600 level admin",
        "defaults",
        "  mode http",
        "  timeout connect 2s",
        "  timeout client 30s",
        "  timeout server 30s",
        "  retries 3",
        "  option redispatch",
        "  retry-on conn-failure empty-response",
    ]
    for name, (port, backends) in (("accounts", accounts), ("certificates", certificates)):
        lines += [
            f"frontend {name}",
            f"  bind 127.0.0.1:{port}",
            f"  default_backend {name}",
            f"backend {name}",
            "  balance roundrobin",
            "  option httpchk GET /readyz",
            "  http-check expect status 200",
            "  default-server inter 300ms fall 2 rise 2 check",
        ]
        lines += [f"  server {name}{i} 127.0.0.1:{p}" for i, p in enumerate(backends, 1)]
    return "\n".join(lines) + "\n"


@dataclass
class Cluster:
    """Every process of the deployment, each in a process group of its own."""

    env: dict[str, str]
    log: Any
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, command: list[str], **env: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            command,
            env={**self.env, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        """SIGKILL the instance and every process of it (its workers too)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver().start()
    yield hook
    hook.stop()


def _request(client: httpx.Client, method: str, url: str, **kwargs: Any) -> tuple[int, int]:
    """Send until an answer other than a proxy or overload error; (status, failed tries)."""
    failures = 0
    for _ in range(40):
        try:
            response = client.request(method, url, **kwargs)
            if response.status_code not in (502, 503, 504):
                return response.status_code, failures
        except httpx.TransportError:
            pass
        failures += 1
        time.sleep(0.25)
    return 0, failures


def _down(sock: Path) -> set[str]:
    """Servers HAProxy has marked DOWN, from its stats socket (CSV of `show stat`)."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(sock))
        conn.sendall(b"show stat\n")
        out = b""
        while chunk := conn.recv(65536):
            out += chunk
    down = set()
    for line in out.decode().splitlines():
        fields = line.split(",")
        if len(fields) > 17 and fields[17].startswith("DOWN"):
            down.add(fields[1])
    return down


def test_killing_one_of_each_under_load_loses_nothing(
    databases: Databases, tmp_path: Path, receiver: Receiver
) -> None:
    pooled_db = databases.create()
    direct = databases.direct(pooled_db)
    var_dir = tmp_path / "var"
    settings = CommonSettings(_env_file=None, var_dir=var_dir)  # type: ignore[call-arg]
    keyfiles.token_signing_key(var_dir, None, None)
    secret = keyfiles.webhook_secret(settings)
    keyfiles.master_keys_text(var_dir, None, None)
    account_ports, certificate_ports = [free_port(), free_port()], [free_port(), free_port()]
    proxy_accounts, proxy_certificates = free_port(), free_port()
    sock = tmp_path / "haproxy.sock"

    with (
        PgBouncer(DIRECT_SERVER_URL, free_port(), SMALL_SERVER) as bouncer,
        (tmp_path / "log").open("wb") as log,
    ):
        cluster = Cluster(
            {
                **os.environ,
                "DATABASE_URL": bouncer.url_for(direct),
                "DATABASE_DIRECT_URL": direct,
                "VAR_DIR": str(var_dir),
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{proxy_certificates}",
                "ACCOUNT_API_URL": f"http://127.0.0.1:{proxy_accounts}",
                "KEY_POOL_FILL_ON_START": "false",
                "NAME_AUTHORIZATION": "open",  # names are not what this test is about
                "WEBHOOK_URL": receiver.url,
                "WEBHOOK_LEASE_SECONDS": "3",
                "WEBHOOK_POLL_SECONDS": "0.2",
                "WEBHOOK_BACKOFF_CAP_SECONDS": "1",
                **{key.upper(): str(value) for key, value in FAST_ARGON2.items()},
            },
            log,
        )
        try:
            for index, port in enumerate(certificate_ports, 1):  # the first creates the CA
                ports = CommonSettings(_env_file=None, certificate_api_port=port)  # type: ignore[call-arg]
                name = f"certificates{index}"
                proc = cluster.start(
                    name,
                    service_commands(ports, 1)["certificate-api"],
                    **metrics_env(var_dir, name),
                )
                wait_until_up(f"http://127.0.0.1:{port}", proc, 60)
            for index, port in enumerate(account_ports, 1):
                name = f"accounts{index}"
                proc = cluster.start(
                    name,
                    service_commands(settings, 1)["account-api"],
                    ACCOUNT_API_PORT=str(port),
                    **metrics_env(var_dir, name),
                )
                wait_until_up(f"http://127.0.0.1:{port}", proc, 60)
            for index in (1, 2):
                cluster.start(f"worker{index}", [sys.executable, "-m", "ca_admin.cli", "worker"])
            config = tmp_path / "haproxy.cfg"
            config.write_text(
                haproxy_config(
                    (proxy_accounts, account_ports), (proxy_certificates, certificate_ports), sock
                )
            )
            haproxy = cluster.start("haproxy", ["haproxy", "-db", "-f", str(config)])
            wait_until_up(f"http://127.0.0.1:{proxy_accounts}", haproxy, 30)
            figures = _load(
                cluster,
                account_ports + certificate_ports,
                receiver,
                secret,
                proxy_accounts,
                proxy_certificates,
                sock,
                direct,
            )
            survivors = [account_ports[1], certificate_ports[1]]
            figures["survivors_not_ready"] = figures["readiness"].count_not_ready(survivors)
        finally:
            cluster.stop()
    print("\nscale-out figures:", {k: v for k, v in figures.items() if k != "readiness"})
    assert figures["survivors_not_ready"] == 0


class Readiness:
    """Polls every instance's /readyz until stopped; counts answers other than 200."""

    def __init__(self, ports: list[int]) -> None:
        self.not_ready: Counter[int] = Counter()
        self.polls = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ports,), daemon=True)
        self.thread.start()

    def _run(self, ports: list[int]) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stopping.wait(0.2):
                for port in ports:
                    try:
                        ok = client.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
                    except httpx.TransportError:
                        ok = False
                    self.not_ready[port] += 0 if ok else 1
                self.polls += 1

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()

    def count_not_ready(self, ports: list[int]) -> int:
        return sum(self.not_ready[port] for port in ports)


def _load(
    cluster: Cluster,
    instance_ports: list[int],
    receiver: Receiver,
    secret: str,
    proxy_accounts: int,
    proxy_certificates: int,
    sock: Path,
    direct: str,
) -> dict[str, Any]:
    accounts = f"http://127.0.0.1:{proxy_accounts}"
    certificates = f"http://127.0.0.1:{proxy_certificates}"
    client = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))
    tokens = []
    for _ in range(CUSTOMERS):
        email = f"scale-{uuid.uuid4().hex[:8]}@example.com"
        body = {"email": email, "password": "s3cret-passw0rd", "name": "Load"}
        assert client.post(f"{accounts}/api/accounts", json=body).status_code == 201
        login = {"email": email, "password": body["password"]}
        token = client.post(f"{accounts}/api/auth/token", json=login).json()["access_token"]
        tokens.append({"Authorization": f"Bearer {token}"})
    readiness = Readiness(instance_ports)
    acknowledged: dict[str, tuple[str, int]] = {}  # certificate id -> serial, customer
    statuses: Counter[int] = Counter()
    retried = 0
    lock = threading.Lock()

    def issue(n: int) -> None:
        nonlocal retried
        auth = tokens[n % CUSTOMERS]
        key = uuid.uuid4().hex
        body = {"common_name": f"n{n}-{key[:6]}.example.com"}
        for _ in range(40):
            try:
                response = client.post(
                    f"{certificates}/api/certificates",
                    json=body,
                    headers={**auth, "Idempotency-Key": key},
                )
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code not in (502, 503, 504):
                break
            with lock:
                retried += 1
            time.sleep(0.25)
        with lock:
            statuses[response.status_code if response is not None else 0] += 1
            if response is not None and response.status_code == 201:
                reply = response.json()
                acknowledged[reply["id"]] = (reply["serial_number"], n % CUSTOMERS)
        # Every third request also goes to the account service.
        if n % 3 == 0:
            status, failures = _request(client, "GET", f"{accounts}/api/accounts/me", headers=auth)
            with lock:
                statuses[status] += 1
                retried += failures

    with ThreadPoolExecutor(6) as pool:
        running = [pool.submit(issue, n) for n in range(ISSUANCES - AFTER_DOWN)]
        while len(acknowledged) < KILL_AFTER:  # the kills land while requests are in flight
            time.sleep(0.01)
        for name in ("accounts1", "certificates1", "worker1"):
            cluster.kill(name)
        in_flight_at_kill = sum(not future.done() for future in running)
        for future in running:
            future.result()
    deadline = time.monotonic() + 30
    while not {"accounts1", "certificates1"} <= _down(sock) and time.monotonic() < deadline:
        time.sleep(0.2)
    down = _down(sock)
    # Once down, the proxy sends nothing to the dead instances: no retry is needed.
    retried_before = retried
    for n in range(ISSUANCES - AFTER_DOWN, ISSUANCES):
        issue(n)
    retried_after_down = retried - retried_before
    readiness.stop()

    served = 0
    for certificate_id, (serial, owner) in acknowledged.items():
        response = client.get(
            f"{certificates}/api/certificates/{certificate_id}", headers=tokens[owner]
        )
        served += response.status_code == 200 and response.json()["serial_number"] == serial
    with psycopg.connect(_libpq(direct)) as conn:
        rows = conn.execute("SELECT id::text, serial_number FROM certificates").fetchall()
        stored: dict[str, str] = dict(rows)
        events = {row[0] for row in conn.execute("SELECT id::text FROM events").fetchall()}
    missing = {cid for cid, (serial, _) in acknowledged.items() if stored.get(cid) != serial}

    def all_delivered(deliveries: list[Any]) -> bool:
        return events <= {delivery.event_id for delivery in deliveries}

    receiver.wait_for(all_delivered, seconds=120)
    deliveries = receiver.received()
    verifier = Webhook(secret)
    for delivery in deliveries:
        verifier.verify(delivery.body, delivery.headers)
    ids = Counter(delivery.event_id for delivery in deliveries)
    client.close()

    assert statuses[201] == ISSUANCES and set(statuses) <= {200, 201}, statuses
    assert missing == set()
    assert served == len(acknowledged)
    assert {"accounts1", "certificates1"} <= down, down
    assert retried_after_down == 0
    return {
        "requests": sum(statuses.values()),
        "queued_or_in_flight_at_kill": in_flight_at_kill,
        "client_retries": retried,
        "acknowledged_certificates": len(acknowledged),
        "stored_of_acknowledged": len(acknowledged) - len(missing),
        "served_of_acknowledged": served,
        "events": len(events),
        "events_delivered": len(ids),
        "deliveries": len(deliveries),
        "duplicates": len(deliveries) - len(ids),
        "proxy_down": sorted(down),
        "readyz_polls": readiness.polls,
        "readiness": readiness,
    }


def _libpq(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
