"""A nonce is good once in any process of the service and across restarts (RFC 8555 section
6.5; the contract: "in any worker process and across restarts"). Two certificate-service
instances run as real processes (the command `ca-admin run` uses) on two ports, with one
database and one VAR_DIR, as two replicas behind a load balancer would."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ca_admin.run import metrics_env, service_commands
from schema.settings import CommonSettings
from tests.acme_protocol.wire import Wire, ec_key, library_client, new_registration, problem
from tests.conftest import FAST_ARGON2, Customer, free_port, wait_until_up


@dataclass
class Instance:
    """One certificate-service process and the raw ACME client for it."""

    name: str
    port: int
    env: dict[str, str]
    log: Any
    proc: subprocess.Popen[bytes] | None = None
    wire: Wire = field(init=False)

    def __post_init__(self) -> None:
        self.wire = Wire(f"http://127.0.0.1:{self.port}")

    def start(self) -> None:
        settings = CommonSettings(_env_file=None, certificate_api_port=self.port)  # type: ignore[call-arg]
        command = service_commands(settings, workers=1)["certificate-api"]
        env = {**self.env, "CERTIFICATE_API_PORT": str(self.port)}
        env.update(metrics_env(Path(self.env["VAR_DIR"]), self.name))
        self.proc = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until_up(self.wire.base, self.proc)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def account_url(self, account_id: str) -> str:
        return self.wire.url(f"/acme/acct/{account_id}")


@pytest.fixture(scope="module")
def instances(
    database_url: str, var_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Instance, Instance]]:
    inherited = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PUBLIC_BASE_URL", "ACCOUNT_API_URL", "HOST")
    }
    env = {
        **inherited,
        "DATABASE_URL": database_url,
        "VAR_DIR": str(var_dir),
        "KEY_POOL_FILL_ON_START": "false",
        **{key.upper(): str(value) for key, value in FAST_ARGON2.items()},
    }
    log = (tmp_path_factory.mktemp("nonce-logs") / "services.log").open("wb")
    first = Instance("certificate-api-a", free_port(), env, log)
    second = Instance("certificate-api-b", free_port(), env, log)
    try:
        # One after the other: the first start writes the shared secrets into VAR_DIR.
        first.start()
        second.start()
        yield first, second
    finally:
        for instance in (first, second):
            instance.stop()
            instance.wire.close()
        log.close()


def test_nonce_from_one_process_works_at_another_and_only_once(
    instances: tuple[Instance, Instance], make_customer: Callable[..., Customer]
) -> None:
    first, second = instances
    customer = make_customer()
    made = first.wire.http.post(first.wire.url("/api/acme/eab"), headers=customer.auth)
    assert made.status_code == 201, made.text
    key = ec_key()
    client = library_client(first.wire.base, key)
    regr = client.new_account(new_registration(client, made.json()))
    account_id = str(regr.uri).rsplit("/", 1)[1]

    nonce = first.wire.nonce()
    at_second = second.wire.send(
        key, second.account_url(account_id), nonce=nonce, kid=second.account_url(account_id)
    )
    assert at_second.status_code == 200, at_second.text
    assert at_second.json()["status"] == "valid"
    again_at_first = first.wire.send(
        key, first.account_url(account_id), nonce=nonce, kid=first.account_url(account_id)
    )
    problem(again_at_first, "badNonce", 400)
    again_at_second = second.wire.send(
        key, second.account_url(account_id), nonce=nonce, kid=second.account_url(account_id)
    )
    problem(again_at_second, "badNonce", 400)

    # The other way round, with the nonce a refusal carried.
    fresh = again_at_second.headers["Replay-Nonce"]
    at_first = first.wire.send(
        key, first.account_url(account_id), nonce=fresh, kid=first.account_url(account_id)
    )
    assert at_first.status_code == 200, at_first.text


def test_nonce_survives_a_restart_and_stays_used(
    instances: tuple[Instance, Instance], make_customer: Callable[..., Customer]
) -> None:
    first, second = instances
    customer = make_customer()
    made = second.wire.http.post(second.wire.url("/api/acme/eab"), headers=customer.auth)
    key = ec_key()
    client = library_client(second.wire.base, key)
    regr = client.new_account(new_registration(client, made.json()))
    account_id = str(regr.uri).rsplit("/", 1)[1]
    unused, used = first.wire.nonce(), first.wire.nonce()
    url = first.account_url(account_id)
    assert first.wire.send(key, url, nonce=used, kid=url).status_code == 200
    first.stop()
    first.start()
    assert first.wire.send(key, url, nonce=unused, kid=url).status_code == 200
    problem(first.wire.send(key, url, nonce=used, kid=url), "badNonce", 400)
