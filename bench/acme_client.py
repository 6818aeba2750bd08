"""The bench's ACME client: an account registered through an external account binding, JWS
requests signed with its P-256 key, and one session per client slot keeping its own chain of
nonces, as certbot and lego do. What it saw goes into an `Outcome`; `bench.acme` drives it
and measures."""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

JOSE = {"Content-Type": "application/jose+json"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class AcmeAccount:
    """An ACME account's key (P-256, ES256) and URL, and the directory it was made under."""

    key: ec.EllipticCurvePrivateKey
    directory: dict[str, Any]
    kid: str = ""

    def jwk(self) -> dict[str, str]:
        numbers = self.key.public_key().public_numbers()
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }

    def sign(self, url: str, payload: object | None, nonce: str, **header: object) -> bytes:
        """A flattened JWS by the account key (`kid`, or `jwk` before the account exists);
        an empty payload for POST-as-GET."""
        protected = {"alg": "ES256", "nonce": nonce, "url": url, **header}
        if "jwk" not in protected:
            protected["kid"] = self.kid
        head, body = _b64json(protected), "" if payload is None else _b64json(payload)
        der = self.key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        return json.dumps({"protected": head, "payload": body, "signature": signature}).encode()


def register(base_url: str, token: str) -> AcmeAccount:
    """An ACME account for the customer of `token`: an EAB key from `POST /api/acme/eab`,
    then newAccount with the binding (RFC 8555 section 7.3.4)."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        directory = client.get("/acme/directory").raise_for_status().json()
        eab = client.post("/api/acme/eab", headers={"Authorization": f"Bearer {token}"})
        if eab.status_code != 201:
            raise RuntimeError(f"POST /api/acme/eab answered {eab.status_code}: {eab.text}")
        key_id, mac_key = eab.json()["key_id"], eab.json()["hmac_key"]
        account = AcmeAccount(ec.generate_private_key(ec.SECP256R1()), directory)
        url = directory["newAccount"]
        head = _b64json({"alg": "HS256", "kid": key_id, "url": url})
        body = _b64json(account.jwk())
        mac = hmac.new(base64.urlsafe_b64decode(mac_key + "=" * (-len(mac_key) % 4)),
                       f"{head}.{body}".encode(), hashlib.sha256).digest()  # fmt: skip
        binding = {"protected": head, "payload": body, "signature": b64url(mac)}
        nonce = client.head(directory["newNonce"]).headers["Replay-Nonce"]
        payload = {"termsOfServiceAgreed": True, "externalAccountBinding": binding}
        reply = client.post(
            url, content=account.sign(url, payload, nonce, jwk=account.jwk()), headers=JOSE
        )
        if reply.status_code != 201:
            raise RuntimeError(f"newAccount answered {reply.status_code}: {reply.text}")
        account.kid = reply.headers["Location"]
    return account


@dataclass(frozen=True)
class Csr:
    """A CSR of one name under bench.example, in the forms each door takes."""

    name: str
    pem: str
    der_b64: str

    @classmethod
    def of(cls, pem: str) -> Csr:
        csr = x509.load_pem_x509_csr(pem.encode())
        name = str(csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)
        return cls(name, pem, b64url(csr.public_bytes(serialization.Encoding.DER)))


@dataclass
class Outcome:
    """What one client run saw: each certificate's latency, every answer's status."""

    latencies: list[float] = field(default_factory=list)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    timeouts: int = 0
    socket_errors: int = 0
    failures: list[str] = field(default_factory=list)  # the first few, for the log
    first: float = 0.0
    last: float = 0.0

    def failed(self, what: str, reply: httpx.Response) -> None:
        if len(self.failures) < 3:
            self.failures.append(f"{what}: {reply.status_code} {reply.text[:200]}")


class AcmeSession:
    """One client slot: its own chain of nonces (each answer's Replay-Nonce signs the next
    request), as a client like certbot keeps."""

    def __init__(self, client: httpx.AsyncClient, account: AcmeAccount, outcome: Outcome):
        self.client, self.account, self.outcome = client, account, outcome
        self.nonce = ""

    async def fresh_nonce(self) -> None:
        reply = await self.client.head(self.account.directory["newNonce"])
        self.nonce = reply.headers["Replay-Nonce"]

    async def post(self, url: str, payload: object | None = None) -> httpx.Response:
        body = self.account.sign(url, payload, self.nonce)
        reply = await self.client.post(url, content=body, headers=JOSE)
        self.outcome.statuses[reply.status_code] += 1
        self.nonce = reply.headers.get("Replay-Nonce", "")
        if not self.nonce:
            await self.fresh_nonce()
        return reply

    async def certificate(self, csr: Csr) -> bool:
        """newOrder, authorization, finalize, download; whether a chain came back."""
        directory, outcome = self.account.directory, self.outcome
        identifiers = [{"type": "dns", "value": csr.name}]
        order = await self.post(directory["newOrder"], {"identifiers": identifiers})
        if order.status_code != 201 or order.json().get("status") != "ready":
            outcome.failed("newOrder (expected 201, ready)", order)
            return False
        for url in order.json()["authorizations"]:
            authz = await self.post(url)
            if authz.status_code != 200 or authz.json().get("status") != "valid":
                outcome.failed("authorization (expected valid)", authz)
                return False
        final = await self.post(order.json()["finalize"], {"csr": csr.der_b64})
        if final.status_code != 200 or final.json().get("status") != "valid":
            outcome.failed("finalize (expected 200, valid)", final)
            return False
        chain = await self.post(final.json()["certificate"])
        if chain.status_code != 200 or chain.text.count("BEGIN CERTIFICATE") != 2:
            outcome.failed("certificate (expected leaf and intermediate)", chain)
            return False
        return True
