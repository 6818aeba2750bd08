"""A throwaway PostgreSQL database, and both services started the way `make run` starts them."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.seed import libpq_url
from ca_admin.run import metrics_env, service_commands
from schema import keyfiles
from schema.db import normalize_url
from schema.migrate import upgrade
from schema.settings import CommonSettings

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def default_server() -> str:
    """Where throwaway bench databases go: BENCH_DATABASE_URL, DATABASE_URL, or local."""
    return os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL") or DEFAULT_SERVER


class BenchDatabase:
    """`tessera_bench_<random>` on the given server: created and migrated, dropped at the end."""

    def __init__(self, server_url: str) -> None:
        self.server_url = normalize_url(server_url)
        self.name = f"tessera_bench_{secrets.token_hex(4)}"
        url = make_url(self.server_url).set(database=self.name)
        self.url = url.render_as_string(hide_password=False)

    def create(self, like: BenchDatabase | None = None) -> None:
        """Empty and migrated, or a copy of `like` (pg_dump piped into pg_restore)."""
        admin = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        admin.dispose()
        if like is None:
            upgrade(self.url)
            return
        dump = subprocess.Popen(
            ["pg_dump", "--format=custom", "--dbname", libpq_url(like.url)], stdout=subprocess.PIPE
        )
        assert dump.stdout is not None
        restore = subprocess.Popen(
            ["pg_restore", "--exit-on-error", "--no-owner", "--dbname", libpq_url(self.url)],
            stdin=dump.stdout,
        )
        dump.stdout.close()  # pg_restore holds the pipe: if it gives up, pg_dump stops too
        restored, dumped = restore.wait(), dump.wait()
        if restored or dumped:
            raise RuntimeError(
                f"copying {like.name}: pg_dump exited with {dumped}, pg_restore with {restored}"
            )

    def drop(self) -> None:
        admin = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": self.name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}"'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Services:
    """Both services (Gunicorn: gthread workers, Uvicorn workers) as real processes on 127.0.0.1."""

    database_url: str
    var_dir: Path
    log_path: Path
    account_workers: int
    certificate_workers: int
    account_port: int = field(default_factory=free_port)
    certificate_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)  # settings of this instance only

    @property
    def database_name(self) -> str:
        return str(make_url(self.database_url).database)

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.account_port}"

    @property
    def certificate_url(self) -> str:
        return f"http://127.0.0.1:{self.certificate_port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "VAR_DIR": str(self.var_dir),
            "ACCOUNT_API_PORT": str(self.account_port),
            "CERTIFICATE_API_PORT": str(self.certificate_port),
            "PUBLIC_BASE_URL": self.certificate_url,
            "ACCOUNT_API_URL": self.account_url,
            # The bench drives many issuances, orders and sign-ups from one account and address.
            "ISSUANCE_RATE_PER_MINUTE": "1000000000",
            "SIGNUP_RATE_PER_HOUR": "1000000000",
            "ACME_ORDERS_PER_HOUR": "1000000000",
            **self.extra_env,
        }

    def commands(self) -> dict[str, list[str]]:
        """The `make run` commands (ca_admin.run.service_commands), each with its worker count."""
        settings = CommonSettings(
            _env_file=None,
            account_api_port=self.account_port,
            certificate_api_port=self.certificate_port,
        )
        return {
            "account-api": service_commands(settings, self.account_workers)["account-api"],
            "certificate-api": service_commands(settings, self.certificate_workers)[
                "certificate-api"
            ],
        }

    def port_of(self, name: str) -> int:
        return self.certificate_port if name == "certificate-api" else self.account_port

    def make_secrets(self) -> None:
        """Development secrets made once, before several workers race to make them, as
        `ca-admin run` does; it leaves the master keys to the workers, where two of them
        starting at once can read the file before it is written (see docs/performance.md)."""
        settings = CommonSettings(_env_file=None, var_dir=self.var_dir)
        keyfiles.token_signing_key(self.var_dir, None, None)
        keyfiles.webhook_secret(settings)
        keyfiles.master_keys_text(self.var_dir, None, None)

    def start(self, names: tuple[str, ...] = ("certificate-api", "account-api")) -> None:
        """Start the services named (the certificate service first: its first start creates
        the CA), each ready before the next."""
        self.make_secrets()
        log = self.log_path.open("ab")
        env = self.env()
        for name in names:
            self.procs[name] = subprocess.Popen(
                self.commands()[name],
                # per port: another instance in the same VAR_DIR keeps its own metrics
                env={**env, **metrics_env(self.var_dir, f"{name}-{self.port_of(name)}")},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            url = self.certificate_url if name == "certificate-api" else self.account_url
            self._wait_ready(name, url)
        log.close()

    def _wait_ready(self, name: str, url: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready after {seconds} s; see {self.log_path}")

    def wait_responsive(self, service: str, seconds: float = 120) -> float:
        """Seconds until the service's /readyz answers 200 within one second again."""
        url = self.certificate_url if service == "certificate" else self.account_url
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        return time.monotonic() - started

    def connection_split(self, service: str) -> list[int]:
        """Established client connections per worker process, most first: how the kernel
        spread them (a socket per worker in the certificate service, one shared socket in
        the account service)."""
        port = self.certificate_port if service == "certificate" else self.account_port
        owners = connection_owners(port)
        return sorted((owners.count(pid) for pid in set(owners)), reverse=True)

    def tree(self) -> dict[int, str]:
        """Every live process the services started (masters, workers, their children):
        pid -> start time, so a reused pid is not mistaken for one of ours."""
        stats = {pid: stat for pid in _pids() if (stat := _stat(pid)) is not None}
        children: dict[int, list[int]] = {}
        for pid, fields in stats.items():
            children.setdefault(int(fields[1]), []).append(pid)
        found: dict[int, str] = {}
        todo = [proc.pid for proc in self.procs.values()]
        while todo:
            pid = todo.pop()
            if pid in stats and pid not in found:
                found[pid] = stats[pid][19]
                todo += children.get(pid, [])
        return found

    def cpu_seconds(self) -> float:
        """CPU time used so far by the services' processes, including children they reaped
        (Gunicorn replaces a worker after `max_requests`)."""
        return sum(_cpu(pid) for pid in self.tree())

    def wait_idle(self, below: float = 0.1, seconds: float = 120) -> float:
        """Wait until the services use less than `below` of a core (start-up work such as
        filling key pools is done); returns how long that took."""
        started = time.monotonic()
        before = self.cpu_seconds()
        while time.monotonic() - started < seconds:
            time.sleep(1)
            now = self.cpu_seconds()
            if now - before < below:
                break
            before = now
        return time.monotonic() - started

    def stop(self) -> list[str]:
        """Stop both services; returns (and kills) any process of theirs that outlived them."""
        ours = self.tree()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        time.sleep(1)
        leftovers = []
        for pid, start in ours.items():
            stat = _stat(pid)
            if stat is not None and stat[19] == start and stat[0] != "Z":
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                leftovers.append(f"pid {pid} (parent {stat[1]}): {command.decode()[:120]}")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return leftovers


def connection_owners(port: int) -> list[int]:
    """The process holding each established server-side connection on `port` (from `ss`)."""
    listing = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [int(pid) for pid in re.findall(r"pid=(\d+)", listing)]


def busy_seconds() -> float:
    """CPU time all processors have spent busy since boot (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def database_cpu_seconds(database: str) -> float:
    """CPU time used so far by the PostgreSQL backends serving `database` (by process title)."""
    marker = f" {database} ".encode()
    total = 0.0
    for pid in _pids():
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres:") and marker in title:
            total += _cpu(pid)
    return total


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: state, ppid, ... (index 19: start time)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _cpu(pid: int) -> float:
    """utime + stime + cutime + cstime."""
    stat = _stat(pid)
    return 0.0 if stat is None else sum(int(stat[i]) for i in (11, 12, 13, 14)) / CLOCK_TICKS
