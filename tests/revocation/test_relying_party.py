"""Revocation as a relying party sees it: OpenSSL and pkilint against the real server."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from tests.conftest import Customer, LiveServices, unique_email

OPENSSL = shutil.which("openssl")
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")


@dataclass
class Party:
    """A customer of the live services, and the files a relying party works with."""

    live: LiveServices
    customer: Customer
    dir: Path

    @property
    def certs(self) -> str:
        return self.live.certificate_url

    def issue(self, **body: Any) -> dict[str, Any]:
        response = httpx.post(
            f"{self.certs}/api/certificates",
            json={"common_name": f"{uuid.uuid4().hex[:8]}.example.net", **body},
            headers=self.customer.auth,
            timeout=30,
        )
        assert response.status_code == 201, response.text
        cert: dict[str, Any] = response.json()
        (self.dir / f"{cert['id']}.pem").write_text(cert["certificate_pem"])
        return cert

    def leaf(self, cert: dict[str, Any]) -> Path:
        return self.dir / f"{cert['id']}.pem"

    def patch(self, cert: dict[str, Any], active: bool) -> dict[str, Any]:
        response = httpx.patch(
            f"{self.certs}/api/certificates/{cert['id']}",
            json={"is_active": active},
            headers=self.customer.auth,
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def revoke(self, cert: dict[str, Any], reason: str) -> httpx.Response:
        return httpx.post(
            f"{self.certs}/api/certificates/{cert['id']}/revoke",
            json={"reason": reason},
            headers=self.customer.auth,
        )

    def ocsp(self, cert: dict[str, Any]) -> str:
        """`openssl ocsp` against the live responder: its whole output."""
        result = subprocess.run(
            [
                OPENSSL or "openssl",
                "ocsp",
                "-issuer",
                str(self.dir / "intermediate.pem"),
                "-cert",
                str(self.leaf(cert)),
                "-url",
                f"{self.certs}/api/ocsp",
                "-CAfile",
                str(self.dir / "root.pem"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return result.stdout + result.stderr

    def crl(self) -> Path:
        response = httpx.get(f"{self.certs}/api/ca/crl")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/pkix-crl"
        path = self.dir / f"crl-{uuid.uuid4().hex[:6]}.der"
        path.write_bytes(response.content)
        return path


def sign_up(live: LiveServices) -> Customer:
    email, password = unique_email("rp"), "relying-party-pw"
    created = httpx.post(
        f"{live.account_url}/api/accounts",
        json={"email": email, "password": password, "name": "Relying"},
    )
    assert created.status_code == 201, created.text
    token = httpx.post(
        f"{live.account_url}/api/auth/token", json={"email": email, "password": password}
    )
    assert token.status_code == 200, token.text
    return Customer(created.json()["id"], email, password, token.json()["access_token"])


@pytest.fixture
def party(live: LiveServices, tmp_path: Path) -> Party:
    chain = httpx.get(f"{live.certificate_url}/api/ca/certificates").text
    intermediate, root = x509.load_pem_x509_certificates(chain.encode())
    pem = serialization.Encoding.PEM
    (tmp_path / "intermediate.pem").write_bytes(intermediate.public_bytes(pem))
    (tmp_path / "root.pem").write_bytes(root.public_bytes(pem))
    (tmp_path / "chain.pem").write_text(chain)
    return Party(live, sign_up(live), tmp_path)


def status_line(output: str, leaf: Path) -> str:
    lines = [line for line in output.splitlines() if line.startswith(f"{leaf}:")]
    assert lines, output
    return lines[0].split(":", 1)[1].strip()


def test_ocsp_follows_hold_release_and_revoke(party: Party) -> None:
    cert = party.issue()
    leaf = party.leaf(cert)

    output = party.ocsp(cert)
    assert "Response verify OK" in output
    assert "WARNING: no nonce" not in output  # the nonce openssl sends comes back
    assert status_line(output, leaf) == "good"

    party.patch(cert, active=False)
    output = party.ocsp(cert)
    assert status_line(output, leaf) == "revoked"
    assert "Reason: certificateHold" in output

    party.patch(cert, active=True)
    assert status_line(party.ocsp(cert), leaf) == "good"

    assert party.revoke(cert, "keyCompromise").status_code == 200
    output = party.ocsp(cert)
    assert status_line(output, leaf) == "revoked"
    assert "Reason: keyCompromise" in output


def test_crl_verifies_and_openssl_verify_rejects_revoked_leaf(party: Party) -> None:
    good, revoked, held = party.issue(), party.issue(), party.issue()
    assert party.revoke(revoked, "superseded").status_code == 200
    party.patch(held, active=False)
    crl_der = party.crl()

    checked = subprocess.run(
        [
            OPENSSL or "openssl",
            "crl",
            "-inform",
            "DER",
            "-in",
            str(crl_der),
            "-noout",
            "-CAfile",
            str(party.dir / "chain.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0 and "verify OK" in checked.stderr + checked.stdout

    crl_pem = party.dir / "crl.pem"
    crl = x509.load_der_x509_crl(crl_der.read_bytes())
    crl_pem.write_bytes(crl.public_bytes(serialization.Encoding.PEM))

    def verify(cert: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                OPENSSL or "openssl",
                "verify",
                "-crl_check",
                "-CAfile",
                str(party.dir / "root.pem"),
                "-untrusted",
                str(party.dir / "intermediate.pem"),
                "-CRLfile",
                str(crl_pem),
                str(party.leaf(cert)),
            ],
            capture_output=True,
            text=True,
            check=False,
        )

    assert verify(good).returncode == 0
    for cert in (revoked, held):
        result = verify(cert)
        assert result.returncode != 0
        assert "certificate revoked" in result.stdout + result.stderr

    reasons = {
        format(entry.serial_number, "x"): entry.extensions.get_extension_for_class(
            x509.CRLReason
        ).value.reason
        for entry in crl
        if format(entry.serial_number, "x") in {revoked["serial_number"], held["serial_number"]}
    }
    assert reasons == {
        revoked["serial_number"]: x509.ReasonFlags.superseded,
        held["serial_number"]: x509.ReasonFlags.certificate_hold,
    }


def test_released_certificate_leaves_the_next_crl(party: Party) -> None:
    cert = party.issue(is_active=False)
    serial = int(cert["serial_number"], 16)
    held_crl = x509.load_der_x509_crl(party.crl().read_bytes())
    assert held_crl.get_revoked_certificate_by_serial_number(serial) is not None

    party.patch(cert, active=True)
    released_crl = x509.load_der_x509_crl(party.crl().read_bytes())
    assert released_crl.get_revoked_certificate_by_serial_number(serial) is None
    assert crl_number(released_crl) > crl_number(held_crl)


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_crl_is_cached_until_something_changes(party: Party) -> None:
    party.issue()  # issuing an active certificate does not touch the CRL
    first = httpx.get(f"{party.certs}/api/ca/crl")
    second = httpx.get(f"{party.certs}/api/ca/crl")
    assert first.headers["etag"] == second.headers["etag"]
    assert first.content == second.content  # the same signed bytes: not rebuilt
    unchanged = httpx.get(
        f"{party.certs}/api/ca/crl", headers={"If-None-Match": first.headers["etag"]}
    )
    assert unchanged.status_code == 304

    party.patch(party.issue(), active=False)
    third = httpx.get(f"{party.certs}/api/ca/crl")
    assert third.headers["etag"] != first.headers["etag"]
    assert crl_number(x509.load_der_x509_crl(third.content)) > crl_number(
        x509.load_der_x509_crl(first.content)
    )


def test_crl_shape(party: Party) -> None:
    crl = x509.load_der_x509_crl(party.crl().read_bytes())
    intermediate = x509.load_pem_x509_certificate((party.dir / "intermediate.pem").read_bytes())
    assert crl.issuer == intermediate.subject
    assert crl.is_signature_valid(intermediate.public_key())  # type: ignore[arg-type]
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = intermediate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc == timedelta(hours=24)


def test_issued_certificates_point_at_this_crl_and_ocsp(party: Party) -> None:
    cert = x509.load_pem_x509_certificate(party.issue()["certificate_pem"].encode())
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    urls = [name.value for point in points for name in point.full_name or []]
    # Each leaf names its own issuer's CRL, which outlives a rotation; /api/ca/crl is the same
    # CRL while that issuer is the current one.
    serial = format(cert.serial_number, "x")
    intermediate = x509.load_pem_x509_certificate((party.dir / "intermediate.pem").read_bytes())
    assert urls == [f"{party.certs}/api/ca/crl/{format(intermediate.serial_number, 'x')}"]
    assert serial
    own = httpx.get(urls[0])
    assert own.status_code == 200
    assert x509.load_der_x509_crl(own.content).issuer == intermediate.subject
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    by_method = {d.access_method: d.access_location.value for d in aia}
    assert by_method[AuthorityInformationAccessOID.OCSP] == f"{party.certs}/api/ocsp"
    issuer_url = by_method[AuthorityInformationAccessOID.CA_ISSUERS]
    issuer = x509.load_der_x509_certificate(httpx.get(issuer_url).content)
    assert (
        issuer.public_bytes(serialization.Encoding.PEM)
        == (party.dir / "intermediate.pem").read_bytes()
    )


def test_revoke_rules(party: Party) -> None:
    held = party.issue(is_active=False)
    revoked = party.revoke(held, "cessationOfOperation")
    assert revoked.status_code == 200
    body = revoked.json()
    assert (body["status"], body["revocation_reason"]) == ("revoked", "cessationOfOperation")

    again = party.revoke(held, "keyCompromise")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"

    activate = httpx.patch(
        f"{party.certs}/api/certificates/{held['id']}",
        json={"is_active": True},
        headers=party.customer.auth,
    )
    assert activate.status_code == 409

    active = party.issue()
    assert party.revoke(active, "superseded").status_code == 200
    for flag in (True, False):  # its flag still says active, but a revoked one has no hold
        change = httpx.patch(
            f"{party.certs}/api/certificates/{active['id']}",
            json={"is_active": flag},
            headers=party.customer.auth,
        )
        assert change.status_code == 409, change.text

    other = party.issue()
    for bad in ({"reason": "certificateHold"}, {"reason": "bogus"}, {}, {"reason": 1}):
        refused = httpx.post(
            f"{party.certs}/api/certificates/{other['id']}/revoke",
            json=bad,
            headers=party.customer.auth,
        )
        assert refused.status_code == 422, bad
    fetched = httpx.get(
        f"{party.certs}/api/certificates/{other['id']}", headers=party.customer.auth
    )
    assert fetched.json()["status"] == "active"  # refused input changed nothing


def test_revoke_is_idempotent_with_a_key(party: Party) -> None:
    cert = party.issue()
    headers = {**party.customer.auth, "Idempotency-Key": uuid.uuid4().hex}
    url = f"{party.certs}/api/certificates/{cert['id']}/revoke"
    first = httpx.post(url, json={"reason": "superseded"}, headers=headers)
    retry = httpx.post(url, json={"reason": "superseded"}, headers=headers)
    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.json()["revocation_reason"] == "superseded"
    changed = httpx.post(url, json={"reason": "keyCompromise"}, headers=headers)
    assert changed.status_code == 422


# --- what the responder says to odd requests ------------------------------------------------


def post_ocsp(party: Party, body: bytes) -> ocsp.OCSPResponse:
    response = httpx.post(
        f"{party.certs}/api/ocsp",
        content=body,
        headers={"Content-Type": "application/ocsp-request"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(response.content)


def foreign_certificate() -> tuple[x509.Certificate, x509.Certificate]:
    """A leaf and its issuer from a CA that is not ours."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Elsewhere CA")])
    now = datetime.now(UTC)
    issuer = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x.example")]))
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return leaf, issuer


def test_malformed_request_gets_malformed_request(party: Party) -> None:
    for body in (b"not der at all", b"\x30\x03\x02\x01\x01"):
        assert post_ocsp(party, body).response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    for path in ("%%%", "!!!!", "AAAA"):
        response = httpx.get(f"{party.certs}/api/ocsp/{path}")
        assert response.status_code == 200
        status = ocsp.load_der_ocsp_response(response.content).response_status
        assert status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_a_post_without_a_request_is_a_400_problem(party: Party) -> None:
    response = httpx.post(
        f"{party.certs}/api/ocsp", content=b"", headers={"Content-Type": "application/ocsp-request"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "OCSP request" in response.json()["detail"]


def test_another_cas_certificate_is_unauthorized(party: Party) -> None:
    leaf, issuer = foreign_certificate()
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
    response = post_ocsp(party, request.public_bytes(serialization.Encoding.DER))
    assert response.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_unknown_serial_is_unknown_and_get_form_works(party: Party) -> None:
    intermediate = x509.load_pem_x509_certificate((party.dir / "intermediate.pem").read_bytes())
    known = x509.load_pem_x509_certificate(party.issue()["certificate_pem"].encode())
    request = ocsp.OCSPRequestBuilder().add_certificate(known, intermediate, hashes.SHA256())
    der = request.build().public_bytes(serialization.Encoding.DER)
    encoded = base64.b64encode(der).decode()
    via_get = httpx.get(f"{party.certs}/api/ocsp/{httpx.URL(encoded).raw_path.decode()}")
    answer = ocsp.load_der_ocsp_response(via_get.content)
    assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert answer.serial_number == known.serial_number

    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        request.build().issuer_name_hash,
        request.build().issuer_key_hash,
        x509.random_serial_number(),
        hashes.SHA256(),
    )
    unknown = post_ocsp(party, builder.build().public_bytes(serialization.Encoding.DER))
    assert unknown.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert unknown.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


def test_responder_certificate_is_delegated_and_short_lived(party: Party) -> None:
    intermediate = x509.load_pem_x509_certificate((party.dir / "intermediate.pem").read_bytes())
    known = x509.load_pem_x509_certificate(party.issue()["certificate_pem"].encode())
    request = ocsp.OCSPRequestBuilder().add_certificate(known, intermediate, hashes.SHA1())
    response = post_ocsp(party, request.build().public_bytes(serialization.Encoding.DER))
    (responder,) = response.certificates
    responder.verify_directly_issued_by(intermediate)
    eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING]
    responder.extensions.get_extension_for_class(x509.OCSPNoCheck)
    assert responder.not_valid_after_utc - responder.not_valid_before_utc <= timedelta(days=31)
    assert response.next_update_utc is not None
    assert response.next_update_utc - response.this_update_utc == timedelta(hours=1)


# --- pkilint ------------------------------------------------------------------------------------


def lint(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / tool), "lint", *args], capture_output=True, text=True, check=False
    )


def test_pkilint_finds_nothing_in_crl_or_ocsp_response(party: Party) -> None:
    revoked, held = party.issue(), party.issue()
    party.revoke(revoked, "keyCompromise")
    party.patch(held, active=False)
    crl = lint("lint_crl", "-t", "CRL", "-p", "PKIX", str(party.crl()))
    assert (crl.returncode, crl.stdout.strip()) == (0, ""), crl.stdout + crl.stderr

    intermediate = x509.load_pem_x509_certificate((party.dir / "intermediate.pem").read_bytes())
    for cert in (revoked, held, party.issue()):
        leaf = x509.load_pem_x509_certificate(cert["certificate_pem"].encode())
        request = ocsp.OCSPRequestBuilder().add_certificate(leaf, intermediate, hashes.SHA1())
        response = httpx.post(
            f"{party.certs}/api/ocsp",
            content=request.build().public_bytes(serialization.Encoding.DER),
            headers={"Content-Type": "application/ocsp-request"},
        )
        path = party.dir / f"ocsp-{cert['id']}.der"
        path.write_bytes(response.content)
        result = lint("lint_ocsp_response", str(path))
        assert (result.returncode, result.stdout.strip()) == (0, ""), result.stdout + result.stderr
