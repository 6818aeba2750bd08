"""Fixtures: a throwaway database per run, app clients, real servers, account factories."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from account_api import create_app as create_account_app
from account_api.settings import AccountSettings
from schema.db import is_sqlite, make_engine, normalize_url
from schema.migrate import upgrade

SERVER_URL = os.environ.get("DATABASE_URL", "")
# When DATABASE_URL goes through PgBouncer, databases are made and dropped, and migrated, on a
# direct connection. Taken out of the environment: a process a test starts with a test
# database's DATABASE_URL must not inherit the server's direct URL (it would migrate and
# LISTEN on another database); tests that want one pass it explicitly (`Databases.direct`).
# (Kept under another name for pytest-xdist's workers, which start after this import.)
DIRECT_SERVER_URL = (
    os.environ.pop("DATABASE_DIRECT_URL", "")
    or os.environ.get("TESSERA_TEST_DIRECT_URL", "")
    or SERVER_URL
)
os.environ["TESSERA_TEST_DIRECT_URL"] = DIRECT_SERVER_URL
ON_POSTGRES = bool(SERVER_URL) and not is_sqlite(SERVER_URL)
THROUGH_POOLER = ON_POSTGRES and DIRECT_SERVER_URL != SERVER_URL
postgres_only = pytest.mark.skipif(not ON_POSTGRES, reason="needs PostgreSQL (DATABASE_URL)")
# Cheap argon2id for the suite; production parameters are measured in bench/.
FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_cost": 1024, "argon2_parallelism": 1}


class Databases:
    """Creates throwaway databases on the configured server (or SQLite files) and drops them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.created: list[str] = []

    def create(self, migrate: bool = True) -> str:
        """A new database: its URL as the services get it (through the pooler, if any)."""
        name = f"tessera_test_{uuid.uuid4().hex[:12]}"
        if ON_POSTGRES:
            admin = create_engine(normalize_url(DIRECT_SERVER_URL), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            url = make_url(normalize_url(SERVER_URL)).set(database=name)
            result = url.render_as_string(hide_password=False)
        else:
            result = f"sqlite:///{self.tmp / (name + '.db')}"
        self.created.append(result)
        if migrate:
            upgrade(self.direct(result))
        return result

    @staticmethod
    def direct(url: str) -> str:
        """The same database on a direct connection (itself when there is no pooler)."""
        if not ON_POSTGRES:
            return url
        name = make_url(url).database
        direct = make_url(normalize_url(DIRECT_SERVER_URL)).set(database=name)
        return direct.render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if not ON_POSTGRES:
            return
        admin = create_engine(normalize_url(DIRECT_SERVER_URL), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for url in self.created:
                name = make_url(url).database
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
                    ),
                    {"n": name},
                )
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    dbs = Databases(tmp_path_factory.mktemp("db"))
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def database_url(databases: Databases) -> str:
    """The suite's migrated database."""
    return databases.create()


@pytest.fixture(scope="session")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where generated development secrets go for the whole run."""
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="session")
def engine(database_url: str) -> Any:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


def account_settings(database_url: str, var_dir: Path, **overrides: Any) -> AccountSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "var_dir": var_dir,
        "signup_rate_per_hour": 10**6,  # the suite signs up hundreds from one address
        **FAST_ARGON2,
    }
    values.update(overrides)
    return AccountSettings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def account_app(database_url: str, var_dir: Path) -> Any:
    return create_account_app(account_settings(database_url, var_dir))


@pytest.fixture
def accounts(account_app: Any) -> Any:
    """A test client of the account service app."""
    return account_app.test_client()


@dataclass
class Customer:
    """An account made through the API, with what logging in gave."""

    id: str
    email: str
    password: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


@pytest.fixture
def make_customer(accounts: Any) -> Callable[..., Customer]:
    """Sign up and log in a fresh customer over HTTP."""

    def make(email: str | None = None, password: str = "s3cret-passw0rd") -> Customer:
        email = email or unique_email()
        created = accounts.post(
            "/api/accounts", json={"email": email, "password": password, "name": "Test Customer"}
        )
        assert created.status_code == 201, created.get_data(as_text=True)
        token = accounts.post("/api/auth/token", json={"email": email, "password": password})
        assert token.status_code == 200, token.get_data(as_text=True)
        return Customer(created.json["id"], email, password, token.json["access_token"])

    return make


@pytest.fixture
def make_admin(make_customer: Callable[..., Customer], account_app: Any) -> Callable[[], Customer]:
    """A customer promoted to admin by the rule the `ca-admin create-admin` command uses."""
    from account_api.accounts import service
    from account_api.extensions import session
    from account_api.runtime import runtime

    def make() -> Customer:
        customer = make_customer()
        with account_app.app_context():
            service.make_admin(session(), runtime().passwords, customer.email, None, "Admin")
        return customer

    return make


def certificate_settings(database_url: str, var_dir: Path, **overrides: Any) -> Any:
    from certificate_api.settings import CertificateSettings

    # Key pools fill on first use, not at every test app's start. Names are not the point
    # of most tests: they run with NAME_AUTHORIZATION=open; tests/domains/ runs `required`.
    values: dict[str, Any] = {
        "database_url": database_url,
        "var_dir": var_dir,
        "key_pool_fill_on_start": False,
        "name_authorization": "open",
        # Tests read the CRL right after a change; coalescing has tests of its own.
        "crl_refresh_seconds": 0,
    }
    values.update(overrides)
    return CertificateSettings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def certs_session(database_url: str, var_dir: Path) -> Iterator[Any]:
    """The certificate service app, with its lifespan run once for the whole suite."""
    from fastapi.testclient import TestClient

    from certificate_api.main import create_app

    with TestClient(create_app(certificate_settings(database_url, var_dir))) as client:
        yield client


@pytest.fixture
def certs(certs_session: Any) -> Any:
    """A test client of the certificate service app."""
    return certs_session


@pytest.fixture
def issue(certs: Any) -> Callable[..., dict[str, Any]]:
    """Issue a certificate for a customer over HTTP and return the 201 body."""

    def make(customer: Customer, **body: Any) -> dict[str, Any]:
        payload = {"common_name": f"{uuid.uuid4().hex[:8]}.example.com", **body}
        response = certs.post("/api/certificates", json=payload, headers=customer.auth)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    return make


TEST_PROXY = "127.0.0.3"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServices:
    """Both services running as real processes on 127.0.0.1."""

    account_url: str
    certificate_url: str
    log_path: Path
    env: dict[str, str]


def wait_until_up(url: str, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {seconds} s")


@pytest.fixture(scope="session")
def live(
    database_url: str, var_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServices]:
    """Gunicorn and Uvicorn, started with the same commands `make run` uses."""
    from ca_admin.run import metrics_env, service_commands
    from schema.settings import CommonSettings

    account_port, certificate_port = free_port(), free_port()
    # Ports that are not the defaults, and no PUBLIC_BASE_URL or ACCOUNT_API_URL: those
    # follow HOST and the ports (the certificate /docs "Authorize" depends on it).
    inherited = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PUBLIC_BASE_URL", "ACCOUNT_API_URL", "HOST")
    }
    env = {
        **inherited,
        "DATABASE_URL": database_url,
        "VAR_DIR": str(var_dir),
        "ACCOUNT_API_PORT": str(account_port),
        "CERTIFICATE_API_PORT": str(certificate_port),
        "KEY_POOL_FILL_ON_START": "false",
        # A reverse proxy on this loopback address: tests connect from it to play one.
        "TRUSTED_PROXIES": TEST_PROXY,
        "NAME_AUTHORIZATION": "open",
        "CRL_REFRESH_SECONDS": "0",
        "SIGNUP_RATE_PER_HOUR": str(10**6),
        # Tests issue RSA keys in parallel with an unfilled pool; the bound has its own tests.
        "MAX_SLOW_KEY_GENERATIONS": "64",
        **{key.upper(): str(value) for key, value in FAST_ARGON2.items()},
    }
    settings = CommonSettings(
        _env_file=None,
        account_api_port=account_port,  # type: ignore[call-arg]
        certificate_api_port=certificate_port,
    )
    commands = service_commands(settings, workers=1)
    log_path = tmp_path_factory.mktemp("logs") / "services.log"
    log = log_path.open("wb")
    procs = [
        subprocess.Popen(
            commands[name],
            env={**env, **metrics_env(var_dir, name)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for name in ("account-api", "certificate-api")
    ]
    services = LiveServices(
        f"http://127.0.0.1:{account_port}", f"http://127.0.0.1:{certificate_port}", log_path, env
    )
    try:
        wait_until_up(services.account_url, procs[0])
        wait_until_up(services.certificate_url, procs[1])
        yield services
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


__all__ = ["ON_POSTGRES", "THROUGH_POOLER", "Customer", "postgres_only", "sys"]
