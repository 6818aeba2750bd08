"""Fixtures of the name tests: a real DNS server, a real challenge server, the certificate
service with NAME_AUTHORIZATION=required, and the worker's validation runner."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from schema.base import utcnow
from schema.db import make_sessionmaker
from tests.conftest import Customer, certificate_settings
from tests.domains.servers import ChallengeServer, Route, Zone, start_dns
from worker import validation_queue
from worker.validation import Checker
from worker.validation_queue import Job
from worker.validation_runner import ValidationRunner

CA_IDENTITY = "tessera.test"


@pytest.fixture(scope="session")
def dns_server() -> Iterator[tuple[Zone, int]]:
    zone, server, port = start_dns()
    yield zone, port
    server.stop()


@pytest.fixture(scope="session")
def zone(dns_server: tuple[Zone, int]) -> Zone:
    return dns_server[0]


@pytest.fixture(scope="session")
def challenge_server() -> Iterator[ChallengeServer]:
    server = ChallengeServer()
    yield server
    server.close()


def names_settings(
    database_url: str, var_dir: Path, dns_port: int, http_port: int, **overrides: Any
) -> Any:
    """The service's settings for these tests: names required, loopback reachable."""
    values: dict[str, Any] = {
        "name_authorization": "required",
        "validation_http_port": http_port,
        "validation_dns_servers": f"127.0.0.1:{dns_port}",
        "validation_deny_networks": "",
        "caa_identities": CA_IDENTITY,
        "validation_timeout_seconds": 2,
        **overrides,
    }
    return certificate_settings(database_url, var_dir, **values)


@pytest.fixture(scope="session")
def settings(
    database_url: str,
    var_dir: Path,
    dns_server: tuple[Zone, int],
    challenge_server: ChallengeServer,
) -> Any:
    return names_settings(database_url, var_dir, dns_server[1], challenge_server.port)


@pytest.fixture(scope="session")
def names_app(settings: Any) -> Iterator[TestClient]:
    from certificate_api.main import create_app

    with TestClient(create_app(settings)) as client:
        yield client


def settle_with(settings: Any, engine: Any, customer: str | None = None) -> int:
    """What the worker does for due validations, once, in this thread: claim every one
    waiting (REST and ACME; only the customer's oldest when given), check, record. Returns
    how many it settled."""
    runner = ValidationRunner(settings, make_sessionmaker(engine), slots=10**6)
    jobs: list[Job] = []
    if customer is not None:
        with runner.sessions() as session:
            now = utcnow()
            job = validation_queue.claim_for(session, uuid.UUID(customer), now, now + runner.lease)
            session.commit()
        jobs += [job] if job is not None else []
    else:
        while (job := runner.claim()) is not None:
            jobs.append(job)

    async def run() -> None:
        checker = Checker(runner.config)
        try:
            await asyncio.gather(*(runner.settle_job(checker, j) for j in jobs))
        finally:
            await checker.close()

    asyncio.run(run())
    return len(jobs)


@pytest.fixture
def settle(settings: Any, engine: Any) -> Callable[[], int]:
    return lambda: settle_with(settings, engine)


class Domains:
    """Drive the domain routes for a customer, publishing what each challenge needs."""

    def __init__(
        self, client: TestClient, zone: Zone, server: ChallengeServer, settle: Callable[[], int]
    ) -> None:
        self.client, self.zone, self.server, self.settle = client, zone, server, settle

    def create(self, customer: Customer, name: str, include_subdomains: bool = False) -> Any:
        body = {"name": name, "include_subdomains": include_subdomains}
        response = self.client.post("/api/domains", json=body, headers=customer.auth)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def publish(self, authz: dict[str, Any], kind: str, value: str | None = None) -> None:
        challenge = next(c for c in authz["challenges"] if c["type"] == kind)
        if kind == "http-01":
            path = "/.well-known/acme-challenge/" + challenge["token"]
            body = challenge["key_authorization"] if value is None else value
            self.server.routes[path] = Route(body=body.encode())
        else:
            self.zone.txt[challenge["record_name"]] = [value or challenge["record_value"]]

    def validate(self, customer: Customer, authz: dict[str, Any], kind: str) -> Any:
        response = self.client.post(
            f"/api/domains/{authz['id']}/validate", json={"type": kind}, headers=customer.auth
        )
        assert response.status_code == 202, response.text
        assert self.settle() >= 1
        return self.get(customer, authz["id"])

    def get(self, customer: Customer, authz_id: str) -> Any:
        response = self.client.get(f"/api/domains/{authz_id}", headers=customer.auth)
        assert response.status_code == 200, response.text
        return response.json()

    def prove(
        self, customer: Customer, name: str, kind: str = "http-01", include_subdomains: bool = False
    ) -> Any:
        authz = self.create(customer, name, include_subdomains)
        self.publish(authz, kind)
        done = self.validate(customer, authz, kind)
        assert done["status"] == "valid", done
        return done


@pytest.fixture
def domains(
    names_app: TestClient, zone: Zone, challenge_server: ChallengeServer, settle: Callable[[], int]
) -> Domains:
    return Domains(names_app, zone, challenge_server, settle)


@pytest.fixture
def issue_as(names_app: TestClient) -> Callable[..., Any]:
    """POST /api/certificates for a customer; the response."""

    def post(customer: Customer, common_name: str, **body: Any) -> Any:
        payload = {"common_name": common_name, **body}
        return names_app.post("/api/certificates", json=payload, headers=customer.auth)

    return post


@pytest.fixture
def grant(engine: Any) -> Callable[..., uuid.UUID]:
    """An operator's grant (what `ca-admin domains grant` does); returns its id."""
    from core import domains as rules
    from core.policy import NamePolicy
    from schema.accounts import Account

    def make(customer: Customer, name: str, include_subdomains: bool = False) -> uuid.UUID:
        with make_sessionmaker(engine)() as session:
            account = session.get(Account, uuid.UUID(customer.id))
            assert account is not None
            wanted = rules.subject(name, include_subdomains, NamePolicy.parse("", ""))
            made = rules.grant(session, account, wanted, 30)
            session.commit()
            return made.id

    return make
