"""The bench scenarios for Locust, to explore interactively (wrk in `make bench` measures).

    pip install locust                      # not a project dependency
    python -m bench --serve                 # or `make run`; prints both URLs
    TESSERA_ACCOUNT_URL=http://127.0.0.1:5001 \\
        locust -f bench/locustfile.py --host http://127.0.0.1:5002 --tags fetch-json

Each simulated customer signs up and logs in through the account API, issues a few
certificates to work on, then runs the tagged tasks: issue-ec-p256, issue-csr,
issue-rsa-2048, fetch-json, fetch-pem, list-active, hold-release, ocsp (certificate
service), sign-up and token (account service). Without --tags every task runs, evenly mixed.
Locust's Python client saturates a core long before wrk does, so on a small machine
compare shapes and errors here, and take throughput from `make bench`.

Only this file imports locust; nothing else in bench/ imports this file.
"""

from __future__ import annotations

import itertools
import os
import random
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from locust import FastHttpUser, tag, task

ACCOUNT_URL = os.environ.get("TESSERA_ACCOUNT_URL", "http://127.0.0.1:5001").rstrip("/")
PASSWORD = "bench-password-123"
PEM_CHAIN = "application/pem-certificate-chain"
_sign_ups = itertools.count()


def _email(kind: str) -> str:
    return f"locust-{kind}-{uuid.uuid4().hex[:12]}@example.com"


def _csr(common_name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


class Customer(FastHttpUser):
    """A customer: the certificate service is the --host, the account service is
    TESSERA_ACCOUNT_URL."""

    def on_start(self) -> None:
        self.email = _email("customer")
        self.client.post(
            f"{ACCOUNT_URL}/api/accounts",
            json={"email": self.email, "password": PASSWORD, "name": "Locust"},
            name="(setup) sign-up",
        )
        reply = self.client.post(
            f"{ACCOUNT_URL}/api/auth/token",
            data={"username": self.email, "password": PASSWORD},
            name="(setup) token",
        )
        self.auth = {"Authorization": f"Bearer {reply.json()['access_token']}"}
        self.ids: list[str] = []
        issued = []
        for n in range(5):
            body = self.client.post(
                "/api/certificates",
                json={"common_name": f"setup-{n}.locust.example"},
                headers=self.auth,
                name="(setup) issue",
            ).json()
            self.ids.append(body["id"])
            issued.append(x509.load_pem_x509_certificate(body["certificate_pem"].encode()))
        chain = self.client.get("/api/ca/certificates", name="(setup) CA chain").text or ""
        issuer = x509.load_pem_x509_certificates(chain.encode())[0]
        self.ocsp_bodies = [
            ocsp.OCSPRequestBuilder()
            .add_certificate(cert, issuer, hashes.SHA1())
            .build()
            .public_bytes(serialization.Encoding.DER)
            for cert in issued
        ]
        self.csr = _csr("csr.locust.example")
        self.held: set[str] = set()

    def _issue(self, name: str, **body: Any) -> None:
        self.client.post(
            "/api/certificates",
            json={"common_name": f"{uuid.uuid4().hex[:8]}.locust.example", **body},
            headers=self.auth,
            name=name,
        )

    @tag("issue-ec-p256")
    @task
    def issue_ec_p256(self) -> None:
        self._issue("issue ec-p256", key_type="ec-p256")

    @tag("issue-csr")
    @task
    def issue_csr(self) -> None:
        self._issue("issue from CSR", csr=self.csr)

    @tag("issue-rsa-2048")
    @task
    def issue_rsa_2048(self) -> None:
        self._issue("issue rsa-2048", key_type="rsa-2048")

    @tag("fetch-json")
    @task
    def fetch_json(self) -> None:
        self.client.get(
            f"/api/certificates/{random.choice(self.ids)}",
            headers={**self.auth, "Accept": "application/json"},
            name="fetch JSON",
        )

    @tag("fetch-pem")
    @task
    def fetch_pem(self) -> None:
        self.client.get(
            f"/api/certificates/{random.choice(self.ids)}",
            headers={**self.auth, "Accept": PEM_CHAIN},
            name="fetch PEM",
        )

    @tag("list-active")
    @task
    def list_active(self) -> None:
        self.client.get(
            "/api/certificates?active=true&limit=100", headers=self.auth, name="list active"
        )

    @tag("hold-release")
    @task
    def hold_release(self) -> None:
        ident = random.choice(self.ids)
        hold = ident not in self.held
        self.client.patch(
            f"/api/certificates/{ident}",
            json={"is_active": not hold},
            headers=self.auth,
            name="hold/release",
        )
        self.held ^= {ident}

    @tag("ocsp")
    @task
    def ocsp(self) -> None:
        self.client.post(
            "/api/ocsp",
            data=random.choice(self.ocsp_bodies),  # type: ignore[arg-type]  # sent as-is
            headers={"Content-Type": "application/ocsp-request"},
            name="OCSP",
        )

    # The account service: absolute URLs, since --host names the certificate service.

    @tag("sign-up")
    @task
    def sign_up(self) -> None:
        self.client.post(
            f"{ACCOUNT_URL}/api/accounts",
            json={"email": _email(f"signup{next(_sign_ups)}"), "password": PASSWORD, "name": "L"},
            name="sign-up",
        )

    @tag("token")
    @task
    def token(self) -> None:
        self.client.post(
            f"{ACCOUNT_URL}/api/auth/token",
            data={"username": self.email, "password": PASSWORD},
            name="token",
        )
