"""A CA of its own for lifecycle tests: a fresh database, both services as real processes,
and `ca-admin` run as operators run it. Rotating or revoking the suite's shared CA would
change what every other test sees."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conftest import (
    FAST_ARGON2,
    Customer,
    Databases,
    LiveServices,
    free_port,
    unique_email,
    wait_until_up,
)

# The webhook tests' fresh deployment and receiver, for the expiry-notice tests.
from tests.webhooks.conftest import receiver, world  # noqa: F401

PEM = serialization.Encoding.PEM


@contextmanager
def services(database_url: str, var_dir: Path, **extra_env: str) -> Iterator[LiveServices]:
    """Both services on free ports, started as `make run` starts them, until the block ends."""
    from ca_admin.run import metrics_env, service_commands
    from schema.settings import CommonSettings

    account_port, certificate_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "VAR_DIR": str(var_dir),
        "ACCOUNT_API_PORT": str(account_port),
        "CERTIFICATE_API_PORT": str(certificate_port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{certificate_port}",
        "ACCOUNT_API_URL": f"http://127.0.0.1:{account_port}",
        "KEY_POOL_FILL_ON_START": "false",
        "NAME_AUTHORIZATION": "open",  # names are not what these tests are about
        **{key.upper(): str(value) for key, value in FAST_ARGON2.items()},
        **extra_env,
    }
    settings = CommonSettings(
        _env_file=None,
        account_api_port=account_port,  # type: ignore[call-arg]
        certificate_api_port=certificate_port,
    )
    commands = service_commands(settings, workers=1)
    log_path = var_dir / f"services-{uuid.uuid4().hex[:6]}.log"
    with log_path.open("wb") as log:
        procs = [
            subprocess.Popen(
                commands[name],
                env={**env, **metrics_env(var_dir, name)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for name in ("account-api", "certificate-api")
        ]
        live = LiveServices(
            f"http://127.0.0.1:{account_port}",
            f"http://127.0.0.1:{certificate_port}",
            log_path,
            env,
        )
        try:
            wait_until_up(live.account_url, procs[0])
            wait_until_up(live.certificate_url, procs[1])
            yield live
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()


def ca_admin(live: LiveServices, *args: str) -> subprocess.CompletedProcess[str]:
    """`ca-admin ARGS` with the services' environment, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "ca_admin.cli", *args],
        env=live.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def sign_up(live: LiveServices) -> Customer:
    """A new customer with a token."""
    email, password = unique_email("life"), "lifecycle-pw-1"
    created = httpx.post(
        f"{live.account_url}/api/accounts",
        json={"email": email, "password": password, "name": "Lifecycle"},
    )
    assert created.status_code == 201, created.text
    token = httpx.post(
        f"{live.account_url}/api/auth/token", json={"email": email, "password": password}
    )
    assert token.status_code == 200, token.text
    return Customer(created.json()["id"], email, password, token.json()["access_token"])


@dataclass
class Operated:
    """A customer of a CA of its own, and a directory for a relying party's files."""

    live: LiveServices
    customer: Customer
    dir: Path

    @property
    def url(self) -> str:
        return self.live.certificate_url

    def issue(self, **body: Any) -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}/api/certificates",
            json={"common_name": f"{uuid.uuid4().hex[:8]}.example.net", **body},
            headers=self.customer.auth,
            timeout=30,
        )
        assert response.status_code == 201, response.text
        cert: dict[str, Any] = response.json()
        return cert

    def write(self, name: str, data: bytes | str) -> Path:
        path = self.dir / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def chain(self) -> list[x509.Certificate]:
        """The served chain: current intermediate, then root."""
        pem = httpx.get(f"{self.url}/api/ca/certificates").text
        return x509.load_pem_x509_certificates(pem.encode())


@pytest.fixture
def operated(databases: Databases, tmp_path: Path) -> Iterator[Operated]:
    """A fresh CA whose processes re-read the CA rows twice a second."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    with services(databases.create(), var_dir, CA_REFRESH_SECONDS="0.5") as live:
        yield Operated(live, sign_up(live), tmp_path)
