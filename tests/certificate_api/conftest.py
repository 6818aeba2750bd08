"""Certificate service fixtures: one certificate of each key type, the CA chain, row counts."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select, update

from schema.certificates import Certificate, CertificateHistory
from schema.events import Event
from tests.conftest import Customer, unique_email

KEY_TYPES = ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519"]
PROBLEM = "application/problem+json"
PEM_CHAIN = "application/pem-certificate-chain"


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem of this status; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys(), body
    assert body["status"] == status and body["detail"], body
    return body


def error_locs(response: Any) -> list[list[Any]]:
    """The `loc` of every field error of a 422 problem."""
    body = assert_problem(response, 422)
    return [err["loc"] for err in body["errors"]]


@dataclass
class Issued:
    """A certificate issued over HTTP: the 201 body and the parsed leaf."""

    body: dict[str, Any]
    leaf: x509.Certificate

    @property
    def id(self) -> str:
        return str(self.body["id"])

    def write(self, directory: Path) -> tuple[Path, Path, Path]:
        """Leaf, chain (intermediate, root) and key as PEM files."""
        directory.mkdir(parents=True, exist_ok=True)
        leaf = directory / "leaf.pem"
        chain = directory / "chain.pem"
        key = directory / "key.pem"
        leaf.write_text(self.body["certificate_pem"])
        chain.write_text(self.body["chain_pem"])
        key.write_text(self.body["private_key_pem"])
        return leaf, chain, key


def signup(account_app: Any) -> Customer:
    """A customer made through the account service, usable outside a test function."""
    client = account_app.test_client()
    email, password = unique_email("certs"), "s3cret-passw0rd"
    created = client.post(
        "/api/accounts", json={"email": email, "password": password, "name": "Key Types"}
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    token = client.post("/api/auth/token", json={"email": email, "password": password})
    assert token.status_code == 200
    return Customer(created.json["id"], email, password, token.json["access_token"])


@pytest.fixture(scope="session")
def by_key_type(account_app: Any, certs_session: Any) -> dict[str, Issued]:
    """One certificate of every key type (RSA-4096 keygen is slow: made once per run)."""
    customer = signup(account_app)
    issued: dict[str, Issued] = {}
    for key_type in KEY_TYPES:
        response = certs_session.post(
            "/api/certificates",
            headers=customer.auth,
            json={
                "common_name": "localhost.example.com",
                "dns_names": ["www.example.com", "*.api.example.com"],
                "ip_addresses": ["127.0.0.1", "::1"],
                "key_type": key_type,
                "validity_days": 30,
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        issued[key_type] = Issued(
            body, x509.load_pem_x509_certificate(body["certificate_pem"].encode())
        )
    return issued


@pytest.fixture(scope="session")
def ca_chain(certs_session: Any) -> list[x509.Certificate]:
    """GET /api/ca/certificates, parsed: intermediate first, root last."""
    response = certs_session.get("/api/ca/certificates")
    assert response.status_code == 200
    return x509.load_pem_x509_certificates(response.content)


@pytest.fixture
def ca_files(ca_chain: list[x509.Certificate], tmp_path: Path) -> tuple[Path, Path]:
    """The root and the intermediate as PEM files."""
    root, intermediate = tmp_path / "root.pem", tmp_path / "intermediate.pem"
    root.write_bytes(ca_chain[-1].public_bytes(serialization.Encoding.PEM))
    intermediate.write_bytes(ca_chain[0].public_bytes(serialization.Encoding.PEM))
    return root, intermediate


@pytest.fixture
def certificate_rows(engine: Any) -> Callable[[str], int]:
    """How many certificate rows an account has."""

    def count(account_id: str) -> int:
        with engine.connect() as conn:
            query = select(func.count()).where(Certificate.account_id == uuid.UUID(account_id))
            return int(conn.execute(query).scalar_one())

    return count


@pytest.fixture
def history_rows(engine: Any) -> Callable[[str], int]:
    """How many history rows a certificate has."""

    def count(certificate_id: str) -> int:
        with engine.connect() as conn:
            query = select(func.count()).where(
                CertificateHistory.certificate_id == uuid.UUID(certificate_id)
            )
            return int(conn.execute(query).scalar_one())

    return count


@pytest.fixture
def event_types(engine: Any) -> Callable[[str], list[str]]:
    """The types of a certificate's events, in the order they were recorded."""

    def types(certificate_id: str) -> list[str]:
        with engine.connect() as conn:
            query = (
                select(Event.type)
                .where(Event.subject_id == uuid.UUID(certificate_id))
                .order_by(Event.seq)
            )
            return [str(kind) for kind in conn.execute(query).scalars()]

    return types


@pytest.fixture
def set_not_after(engine: Any) -> Callable[[str, datetime], None]:
    """Move a certificate's expiry in the database (to make one expired without waiting)."""

    def move(certificate_id: str, moment: datetime) -> None:
        with engine.begin() as conn:
            conn.execute(
                update(Certificate)
                .where(Certificate.id == uuid.UUID(certificate_id))
                .values(not_after=moment)
            )

    return move


class RoundTrips:
    """Counts the messages the async statement layer sends to PostgreSQL and waits on: every
    `execute` of a psycopg async cursor (a batch of statements is one)."""

    def __init__(self) -> None:
        self.count = 0

    @contextlib.contextmanager
    def at_most(self, budget: int) -> Iterator[None]:
        """Fail when the block takes more round trips than its budget."""
        start = self.count
        yield
        used = self.count - start
        assert used <= budget, f"{used} round trips, budget {budget}"


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    """A round-trip counter for the certificate routes on PostgreSQL (see `RoundTrips`)."""
    counter = RoundTrips()
    original = psycopg.AsyncCursor.execute

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter.count += 1
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", counted)
    return counter
