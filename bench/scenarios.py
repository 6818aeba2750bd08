"""The scenarios: who calls what, with which prepared requests, expecting which answers."""

from __future__ import annotations

import itertools
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlencode

import httpx
import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from bench import names, seed
from bench.ceilings import make_csr
from bench.load import Request
from bench.services import Services

PASSWORD = "bench-password-123"
PEM_CHAIN = "application/pem-certificate-chain"
BASE_CERTIFICATES = 10_000  # rows in the table for the default run and the small scale point
BASE_ACCOUNTS = 1_000
READER_CERTIFICATES = 250  # the account fetch and list read: the same at every scale
HOLDER_CERTIFICATES = 500
TEMPLATE_CERTIFICATES = 16


@dataclass
class Customer:
    """An account signed up and logged in through the account API."""

    id: uuid.UUID
    email: str
    token: str


@dataclass
class Context:
    """Everything scenarios need: where the services are, who calls, what exists."""

    services: Services
    database_url: str
    reader: Customer  # owns the certificates fetched and listed
    holder: Customer  # owns the certificates held and released
    issuer: Customer  # receives everything issued during the run
    logins: list[Customer]  # the token scenario cycles through these
    reader_ids: list[uuid.UUID] = field(default_factory=list)
    holder_ids: list[uuid.UUID] = field(default_factory=list)
    csrs: list[str] = field(default_factory=list)
    ocsp_bodies: list[bytes] = field(default_factory=list)
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    stem: str = ""  # the run's name in bench/results/
    sign_ups: itertools.count[int] = field(default_factory=itertools.count)
    logged_in_at: float = field(default_factory=time.monotonic)

    def auth(self, customer: Customer) -> dict[str, str]:
        return {"Authorization": f"Bearer {customer.token}"}

    def refresh_tokens(self, older_than_s: float = 1800) -> None:
        """Log everyone in again when the tokens near their (default one hour) lifetime."""
        if time.monotonic() - self.logged_in_at < older_than_s:
            return
        with httpx.Client(timeout=30) as client:
            for customer in {c.email: c for c in [self.reader, self.holder, self.issuer]}.values():
                customer.token = login(client, self.services.account_url, customer.email)
        self.logged_in_at = time.monotonic()


def login(client: httpx.Client, account_url: str, email: str) -> str:
    reply = client.post(
        account_url + "/api/auth/token", data={"username": email, "password": PASSWORD}
    )
    reply.raise_for_status()
    token: str = reply.json()["access_token"]
    return token


def sign_up(client: httpx.Client, account_url: str, email: str) -> Customer:
    reply = client.post(
        account_url + "/api/accounts",
        json={"email": email, "password": PASSWORD, "name": "Bench Customer"},
    )
    if reply.status_code != 201:
        raise RuntimeError(f"sign-up answered {reply.status_code}: {reply.text}")
    return Customer(uuid.UUID(reply.json()["id"]), email, login(client, account_url, email))


def prepare(services: Services, database_url: str) -> Context:
    """Sign up the callers, issue real certificates, seed the base rows with COPY."""
    tag = secrets.token_hex(3)
    with httpx.Client(timeout=60) as client:
        people = [
            sign_up(client, services.account_url, f"bench-{tag}-{role}@example.com")
            for role in ("reader", "holder", "issuer", "login1", "login2", "login3")
        ]
        reader, holder, issuer = people[:3]
        names.grant_bench_names(database_url, issuer.id)  # what it issues is under bench.example
        ctx = Context(services, database_url, reader, holder, issuer, people, tag=tag)
        issued = []
        for n in range(TEMPLATE_CERTIFICATES):
            reply = client.post(
                services.certificate_url + "/api/certificates",
                json={"common_name": f"template-{n}.bench.example"},
                headers=ctx.auth(issuer),
            )
            if reply.status_code != 201:
                raise RuntimeError(f"issuing answered {reply.status_code}: {reply.text}")
            issued.append(x509.load_pem_x509_certificate(reply.json()["certificate_pem"].encode()))
        chain = client.get(services.certificate_url + "/api/ca/certificates").text
    issuing_ca = x509.load_pem_x509_certificates(chain.encode())[0]
    ctx.ocsp_bodies = [
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, issuing_ca, hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
        for cert in issued
    ]
    ctx.csrs = [
        make_csr(ec.generate_private_key(ec.SECP256R1()), f"csr-{n}.bench.example")
        for n in range(8)
    ]
    templates = seed.Templates.load(database_url)
    bulk_owners = seed.copy_accounts(database_url, BASE_ACCOUNTS - len(people), f"base-{tag}")
    ctx.reader_ids = seed.copy_certificates(
        database_url, templates, [reader.id], READER_CERTIFICATES, "reader", 10, 25
    )
    ctx.holder_ids = seed.copy_certificates(
        database_url, templates, [holder.id], HOLDER_CERTIFICATES, "holder", 10**9, 10**9
    )
    rest = BASE_CERTIFICATES - READER_CERTIFICATES - HOLDER_CERTIFICATES - TEMPLATE_CERTIFICATES
    seed.copy_certificates(database_url, templates, bulk_owners, rest, "base")
    seed.vacuum_analyze(database_url)
    return ctx


def scale_to(ctx: Context, certificates: int, accounts: int) -> None:
    """Top the tables up to `certificates` rows across `accounts` accounts."""
    have_certificates, have_accounts = seed.count_rows(ctx.database_url)
    templates = seed.Templates.load(ctx.database_url)
    owners = seed.copy_accounts(ctx.database_url, accounts - have_accounts, f"scale-{ctx.tag}")
    seed.copy_certificates(
        ctx.database_url, templates, owners, certificates - have_certificates, "scale"
    )
    seed.vacuum_analyze(ctx.database_url)


# --- request builders: (context, how many distinct requests at most) -> requests ------------


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _issue(ctx: Context, count: int, extra: dict[str, str]) -> list[Request]:
    headers = {**ctx.auth(ctx.issuer), "Content-Type": "application/json"}
    return [
        Request(
            "POST",
            "/api/certificates",
            headers,
            _json({"common_name": f"load-{n}.{ctx.tag}.bench.example", **extra}),
        )
        for n in range(min(count, 64))
    ]


def issue_ec(ctx: Context, count: int) -> list[Request]:
    return _issue(ctx, count, {"key_type": "ec-p256"})


def issue_rsa(ctx: Context, count: int) -> list[Request]:
    return _issue(ctx, count, {"key_type": "rsa-2048"})


def issue_csr(ctx: Context, count: int) -> list[Request]:
    headers = {**ctx.auth(ctx.issuer), "Content-Type": "application/json"}
    return [
        Request(
            "POST",
            "/api/certificates",
            headers,
            _json({"common_name": f"csr-{n % len(ctx.csrs)}.bench.example", "csr": csr}),
        )
        for n, csr in enumerate(ctx.csrs)
    ]


def fetch_json(ctx: Context, count: int) -> list[Request]:
    headers = {**ctx.auth(ctx.reader), "Accept": "application/json"}
    return [Request("GET", f"/api/certificates/{ident}", headers) for ident in ctx.reader_ids]


def fetch_pem(ctx: Context, count: int) -> list[Request]:
    headers = {**ctx.auth(ctx.reader), "Accept": PEM_CHAIN}
    return [Request("GET", f"/api/certificates/{ident}", headers) for ident in ctx.reader_ids]


def list_active(ctx: Context, count: int) -> list[Request]:
    return [Request("GET", "/api/certificates?active=true&limit=100", ctx.auth(ctx.reader))]


def hold_release(ctx: Context, count: int) -> list[Request]:
    """Hold every certificate, then release every one, round and round: each PATCH changes."""
    headers = {**ctx.auth(ctx.holder), "Content-Type": "application/json"}
    return [
        Request("PATCH", f"/api/certificates/{ident}", headers, _json({"is_active": active}))
        for active in (False, True)
        for ident in ctx.holder_ids
    ]


def release_all(ctx: Context) -> str | None:
    """Start hold/release from all-active, whatever an earlier run left."""
    with psycopg.connect(seed.libpq_url(ctx.database_url)) as conn:
        conn.execute(
            "UPDATE certificates SET is_active = true, held_at = NULL WHERE account_id = %s",
            (ctx.holder.id,),
        )
    return None


def ocsp_post(ctx: Context, count: int) -> list[Request]:
    headers = {"Content-Type": "application/ocsp-request"}
    return [Request("POST", "/api/ocsp", headers, body) for body in ctx.ocsp_bodies]


def ocsp_deployed(ctx: Context) -> str | None:
    """A skip note while POST /api/ocsp does not exist yet."""
    reply = httpx.post(
        ctx.services.certificate_url + "/api/ocsp",
        content=ctx.ocsp_bodies[0],
        headers={"Content-Type": "application/ocsp-request"},
        timeout=30,
    )
    if reply.status_code in (404, 405):
        return f"skipped: POST /api/ocsp answered {reply.status_code} (responder not deployed yet)"
    return None  # anything else is measured, and a wrong answer counts as an error


def sign_up_requests(ctx: Context, count: int) -> list[Request]:
    """Fresh emails every time: a repeated one would be a 409, not a sign-up."""
    headers = {"Content-Type": "application/json"}
    return [
        Request(
            "POST",
            "/api/accounts",
            headers,
            _json(
                {
                    "email": f"signup-{ctx.tag}-{next(ctx.sign_ups)}@example.com",
                    "password": PASSWORD,
                    "name": "Bench Sign-up",
                }
            ),
        )
        for _ in range(count)
    ]


def token_requests(ctx: Context, count: int) -> list[Request]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return [
        Request(
            "POST",
            "/api/auth/token",
            headers,
            urlencode({"username": c.email, "password": PASSWORD}).encode(),
        )
        for c in ctx.logins
    ]


def healthz(ctx: Context, count: int) -> list[Request]:
    return [Request("GET", "/healthz")]


@dataclass(frozen=True)
class Scenario:
    """A named load: which service, which requests, which answers count as success."""

    name: str
    service: Literal["certificate", "account"]
    build: Callable[[Context, int], list[Request]]
    expected: frozenset[int]
    crypto: str | None = None  # the crypto ceiling it is compared with
    before: Callable[[Context], str | None] | None = None  # returns a skip note, or None
    cap: int | None = None  # most answers in one run (sign-ups need one line each)


OK, CREATED = frozenset({200}), frozenset({201})
CEILINGS = {
    "certificate": Scenario("healthz (certificate)", "certificate", healthz, OK),
    "account": Scenario("healthz (account)", "account", healthz, OK),
}
SCENARIOS = [
    Scenario("issue ec-p256", "certificate", issue_ec, CREATED, "ec-p256"),
    Scenario("issue from CSR", "certificate", issue_csr, CREATED, "csr-ec-p256"),
    # Capped at one process's key pool (32 keys by default): the row measures issuance while
    # the pool has keys, as the target says. Sustained, it is bound by key generation.
    Scenario("issue rsa-2048", "certificate", issue_rsa, CREATED, "rsa-2048", cap=32),
    Scenario("fetch JSON", "certificate", fetch_json, OK),
    Scenario("fetch PEM", "certificate", fetch_pem, OK),
    Scenario("list active", "certificate", list_active, OK),
    Scenario("hold/release", "certificate", hold_release, OK, before=release_all),
    Scenario("OCSP", "certificate", ocsp_post, OK, "ocsp", before=ocsp_deployed),
    Scenario("sign-up", "account", sign_up_requests, CREATED, "argon2-hash", cap=4000),
    Scenario("token", "account", token_requests, OK, "argon2-verify"),
]
OVERLOAD = ["issue ec-p256", "fetch JSON", "token"]


def by_name(name: str) -> Scenario:
    return next(s for s in SCENARIOS if s.name == name)
