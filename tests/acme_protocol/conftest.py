"""Fixtures of the ACME protocol tests: the certificate service of this process served by a
real Uvicorn on 127.0.0.1 (NAME_AUTHORIZATION=required, a name policy that denies
`denied.test`), a real DNS server, HTTP challenge server and tls-alpn-01 server the validator
asks, and the worker's validation runner settling challenges in the test thread.

`Acme` drives one test: customers, their EAB keys and ACME accounts (certbot's `acme`
library), publishing what a challenge needs, settling, issuing.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import josepy as jose
import pytest
import uvicorn
from acme import challenges, messages
from acme import client as acme_client
from acme.crypto_util import make_csr
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from schema.db import make_sessionmaker
from tests.acme_protocol.wire import Wire, b64, ec_key, library_client, new_registration
from tests.conftest import Customer, free_port
from tests.domains.conftest import names_settings, settle_with
from tests.domains.servers import ChallengeServer, Route, TlsAlpnServer, Zone, start_dns, wait_for

DENIED = "denied.test"
DEADLINE = datetime.timedelta(seconds=60)


def unique_name(label: str = "acme") -> str:
    """A DNS name of its own under `.test` (the test DNS server answers 127.0.0.1)."""
    return f"{label}-{uuid.uuid4().hex[:10]}.test"


class InProcessServer:
    """An app served by Uvicorn in a thread of this process, on 127.0.0.1:`port`."""

    def __init__(self, app: Any, port: int) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="acme-uvicorn", daemon=True)

    def start(self) -> None:
        self.thread.start()
        wait_for(lambda: self.server.started or not self.thread.is_alive(), 30)
        assert self.server.started, "the certificate service did not start"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@dataclass
class Validators:
    """What the validator talks to: DNS, the http-01 server, the tls-alpn-01 server."""

    zone: Zone
    dns_port: int
    http01: ChallengeServer
    tls: TlsAlpnServer


@dataclass
class Service:
    """The certificate service under test and what its validator talks to."""

    base: str  # its PUBLIC_BASE_URL
    settings: Any
    engine: Any
    validators: Validators

    def settle(self, customer: str | None = None) -> int:
        """What the worker does for due validations, once, in this thread: claim the REST
        validations and the answered ACME challenges, check, record. How many it settled.
        `customer`: only that customer's validation answered first."""
        return settle_with(self.settings, self.engine, customer)


@pytest.fixture(scope="session")
def validators() -> Iterator[Validators]:
    zone, dns, dns_port = start_dns()
    http01, tls = ChallengeServer(), TlsAlpnServer()
    yield Validators(zone, dns_port, http01, tls)
    tls.stop()
    http01.close()
    dns.stop()


@pytest.fixture(scope="session")
def serve(
    database_url: str, var_dir: Path, engine: Any, validators: Validators
) -> Callable[..., contextlib.AbstractContextManager[Service]]:
    """Start the certificate service in this process with the protocol tests' settings and
    `overrides`, for the length of a `with`."""

    @contextlib.contextmanager
    def run(**overrides: Any) -> Iterator[Service]:
        from certificate_api.main import create_app

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        values = {
            "public_base_url": base,
            "validation_tls_port": validators.tls.port,
            "name_policy_deny": DENIED,
            **overrides,
        }
        settings = names_settings(
            database_url, var_dir, validators.dns_port, validators.http01.port, **values
        )
        server = InProcessServer(create_app(settings), port)
        server.start()
        try:
            yield Service(base, settings, engine, validators)
        finally:
            server.stop()

    return run


@pytest.fixture(scope="session")
def service(serve: Callable[..., contextlib.AbstractContextManager[Service]]) -> Iterator[Service]:
    """The service most protocol tests share."""
    with serve() as running:
        yield running


@dataclass
class Account:
    """An ACME account: the customer it acts for, its key, and certbot's client for it."""

    customer: Customer
    key: jose.JWK
    client: acme_client.ClientV2
    regr: messages.RegistrationResource

    @property
    def kid(self) -> str:
        """Its URL, the `kid` of its requests."""
        return str(self.regr.uri)


@dataclass
class Issued:
    """A certificate issued through ACME: the order, the PEM chain served, the leaf's key."""

    order: messages.OrderResource
    chain_pem: str
    key: ec.EllipticCurvePrivateKey

    @property
    def certificates(self) -> list[x509.Certificate]:
        return x509.load_pem_x509_certificates(self.chain_pem.encode())

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]

    @property
    def issuer(self) -> x509.Certificate:
        return self.certificates[1]

    @property
    def certificate_id(self) -> str:
        """The id in the certificate URL: the REST API's certificate id."""
        return str(self.order.body.certificate).rsplit("/", 1)[1]


def challenge_type(challb: messages.ChallengeBody) -> str:
    """A challenge's type, also of one certbot's library does not know."""
    return str(challb.chall.to_partial_json()["type"])


def csr_for(names: Sequence[str]) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """A PEM CSR for DNS names and IP addresses (subjectAltName only), and its fresh key."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    dns, ips = [], []
    for name in names:
        try:
            ips.append(ipaddress.ip_address(name))
        except ValueError:
            dns.append(name)
    return make_csr(pem, dns, ipaddrs=ips), key


def csr_b64(names: Sequence[str]) -> str:
    """A CSR for `names` as finalize takes it: DER, base64url."""
    pem, _key = csr_for(names)
    der = x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER)
    return jose.b64encode(der).decode()


class Acme:
    """One test's view of the service: customers, ACME accounts, orders, challenges."""

    def __init__(self, service: Service, make_customer: Callable[..., Customer]) -> None:
        self.service = service
        self.base = service.base
        self.make_customer = make_customer
        self.wire = Wire(service.base)

    def url(self, path: str) -> str:
        return self.base + path

    def eab(self, customer: Customer) -> dict[str, str]:
        """A fresh external account binding key of the customer."""
        response = self.wire.http.post(self.url("/api/acme/eab"), headers=customer.auth)
        assert response.status_code == 201, response.text
        made: dict[str, str] = response.json()
        return made

    def register(self, customer: Customer | None = None, key: jose.JWK | None = None) -> Account:
        """A new ACME account for the customer (a fresh one unless given), through certbot's
        client with an external account binding."""
        customer = customer or self.make_customer()
        key = key or ec_key()
        client = library_client(self.base, key)
        regr = client.new_account(new_registration(client, self.eab(customer)))
        return Account(customer, key, client, regr)

    def grant(self, customer: Customer, name: str, include_subdomains: bool = False) -> None:
        """An operator's grant of `name` to the customer (`ca-admin domains grant`)."""
        from core import domains as rules
        from core.policy import NamePolicy
        from schema.accounts import Account as CustomerRow

        with make_sessionmaker(self.service.engine)() as session:
            row = session.get(CustomerRow, uuid.UUID(customer.id))
            assert row is not None
            wanted = rules.subject(name, include_subdomains, NamePolicy.parse("", ""))
            rules.grant(session, row, wanted, 30)
            session.commit()

    def order(
        self, account: Account, names: Sequence[str]
    ) -> tuple[messages.OrderResource, ec.EllipticCurvePrivateKey]:
        """newOrder for `names` (the CSR's, made with a fresh key), and that key."""
        csr, key = csr_for(names)
        return account.client.new_order(csr), key

    def publish(
        self,
        account: Account,
        authzr: messages.AuthorizationResource,
        kind: str,
        wrong: bool = False,
        **faults: Any,
    ) -> messages.ChallengeBody:
        """Serve what the authorization's `kind` challenge asks for (a key authorization
        with the wrong thumbprint when `wrong`; for tls-alpn-01, `faults` as `AlpnAnswer`
        takes them); the challenge."""
        challb = next(c for c in authzr.body.challenges if challenge_type(c) == kind)
        name = authzr.body.identifier.value
        token = challb.chall.to_partial_json()["token"]
        thumbprint = "not-the-thumbprint" if wrong else b64(account.key.thumbprint())
        key_auth = f"{token}.{thumbprint}"
        validators = self.service.validators
        if kind == "http-01":
            path = f"/.well-known/acme-challenge/{token}"
            validators.http01.routes[path] = Route(body=key_auth.encode())
        elif kind == "dns-01":
            digest = hashlib.sha256(key_auth.encode()).digest()
            validators.zone.txt[f"_acme-challenge.{name}".lower()] = [b64(digest)]
        else:
            validators.tls.add(name, key_auth, **faults)
        return challb

    def answer(
        self, account: Account, orderr: messages.OrderResource, kind: str, wrong: bool = False
    ) -> None:
        """Prove every pending authorization of the order with `kind`, and settle. (certbot's
        library answers http-01 and dns-01; it no longer knows tls-alpn-01: answered raw.)"""
        pending = [a for a in orderr.authorizations if a.body.status == messages.STATUS_PENDING]
        for authzr in pending:
            challb = self.publish(account, authzr, kind, wrong)
            if isinstance(challb.chall, challenges.UnrecognizedChallenge):
                url = challb.chall.jobj["url"]
                answered = self.wire.send(account.key, url, {}, kid=account.kid)
                assert answered.status_code == 200, answered.text
            else:
                account.client.answer_challenge(challb, challb.chall.response(account.key))
        assert self.service.settle() >= len(pending)

    def finalize(self, account: Account, orderr: messages.OrderResource) -> messages.OrderResource:
        """Finalize a ready order (finalization is synchronous here) and fetch the chain."""
        orderr = account.client.poll_authorizations(orderr, datetime.datetime.now() + DEADLINE)
        orderr = account.client.begin_finalization(orderr)
        assert orderr.body.status == messages.STATUS_VALID, orderr.body
        chain = account.client._post_as_get(orderr.body.certificate)
        assert chain.headers["content-type"].startswith("application/pem-certificate-chain")
        return orderr.update(fullchain_pem=chain.text)

    def issue(self, account: Account, names: Sequence[str], kind: str = "http-01") -> Issued:
        """A certificate for `names` through ACME, proving each with `kind`."""
        orderr, key = self.order(account, names)
        self.answer(account, orderr, kind)
        done = self.finalize(account, orderr)
        return Issued(done, str(done.fullchain_pem), key)


def ocsp_status(acme: Acme, issued: Issued) -> ocsp.OCSPResponse:
    """What the OCSP responder says of the certificate (POST /api/ocsp)."""
    request = ocsp.OCSPRequestBuilder().add_certificate(issued.leaf, issued.issuer, hashes.SHA256())
    response = acme.wire.http.post(
        acme.url("/api/ocsp"),
        content=request.build().public_bytes(serialization.Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
    )
    assert response.status_code == 200, response.text
    answer = ocsp.load_der_ocsp_response(response.content)
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.serial_number == issued.leaf.serial_number
    return answer


@pytest.fixture
def acme(service: Service, make_customer: Callable[..., Customer]) -> Iterator[Acme]:
    harness = Acme(service, make_customer)
    yield harness
    harness.wire.close()
