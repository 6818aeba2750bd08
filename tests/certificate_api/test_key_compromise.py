"""keyCompromise destroys the stored key and blocks the public key, for the certificate's
owner or, with proof of possession of the private key, for every account; RSA exponents
other than 65537 are refused."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.certificate_api.conftest import assert_problem, error_locs
from tests.certificate_api.test_validation import make_csr
from tests.conftest import Customer


def revoke(certs: Any, who: Customer, cert_id: str, reason: str) -> Any:
    return certs.post(
        f"/api/certificates/{cert_id}/revoke", json={"reason": reason}, headers=who.auth
    )


def post_csr(certs: Any, who: Customer, key: Any) -> Any:
    payload = {"common_name": "kc.example.com", "csr": make_csr(key, "kc.example.com")}
    return certs.post("/api/certificates", json=payload, headers=who.auth)


def test_key_compromise_destroys_the_stored_key_and_blocks_it(
    certs: Any, make_customer: Any, issue: Any, certificate_rows: Callable[[str], int]
) -> None:
    owner: Customer = make_customer()
    cert = issue(owner)
    key_url = f"/api/certificates/{cert['id']}/private-key"
    assert certs.get(key_url, headers=owner.auth).status_code == 200

    revoked = revoke(certs, owner, cert["id"], "keyCompromise")
    assert revoked.status_code == 200 and revoked.json()["has_private_key"] is False
    assert_problem(certs.get(key_url, headers=owner.auth), 410)

    # The key the service made (and handed out) is now blocked, for every account.
    key = serialization.load_pem_private_key(cert["private_key_pem"].encode(), None)
    other: Customer = make_customer()
    before = certificate_rows(other.id)
    assert ["body", "csr"] in error_locs(post_csr(certs, other, key))
    assert certificate_rows(other.id) == before


def test_a_csr_key_revoked_for_compromise_is_refused_afterwards(
    certs: Any, make_customer: Any
) -> None:
    owner: Customer = make_customer()
    key = ec.generate_private_key(ec.SECP256R1())
    first = post_csr(certs, owner, key)
    assert first.status_code == 201
    assert post_csr(certs, owner, key).status_code == 201  # reusing a key is allowed ...
    assert revoke(certs, owner, first.json()["id"], "keyCompromise").status_code == 200
    body = assert_problem(post_csr(certs, owner, key), 422)  # ... until it is compromised
    assert "compromised" in body["errors"][0]["msg"]


def test_other_reasons_keep_the_key(certs: Any, make_customer: Any, issue: Any) -> None:
    owner: Customer = make_customer()
    cert = issue(owner)
    assert revoke(certs, owner, cert["id"], "superseded").status_code == 200
    key_url = f"/api/certificates/{cert['id']}/private-key"
    assert certs.get(key_url, headers=owner.auth).status_code == 200
    key = serialization.load_pem_private_key(cert["private_key_pem"].encode(), None)
    assert post_csr(certs, owner, key).status_code == 201


def test_rsa_exponent_other_than_65537_is_refused(certs: Any, make_customer: Any) -> None:
    owner: Customer = make_customer()
    key = rsa.generate_private_key(public_exponent=3, key_size=2048)
    body = assert_problem(post_csr(certs, owner, key), 422)
    assert body["errors"][0]["loc"] == ["body", "csr"]
    assert "65537" in body["errors"][0]["msg"]


# --- who a keyCompromise blocks the key for -------------------------------------------------

ProofKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PROOF_KEYS: dict[str, tuple[Callable[[], ProofKey], str]] = {
    "ec-p256": (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
    "ec-p384": (lambda: ec.generate_private_key(ec.SECP384R1()), "ES384"),
    "rsa-2048": (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
    "ed25519": (ed25519.Ed25519PrivateKey.generate, "EdDSA"),
}


def csr_of(key: ProofKey, name: str) -> str:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    digest = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, digest)
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def issue_with(certs: Any, who: Customer, csr: str) -> Any:
    """Issue from a CSR for a name of the caller's own: REST takes the names from the body."""
    name = f"{who.id[:8]}-{uuid.uuid4().hex[:6]}.example.com"
    return certs.post("/api/certificates", json={"common_name": name, "csr": csr}, headers=who.auth)


def renew_with(certs: Any, who: Customer, cert_id: str, csr: str) -> Any:
    return certs.post(f"/api/certificates/{cert_id}/renew", json={"csr": csr}, headers=who.auth)


def revoke_with(certs: Any, who: Customer, cert_id: str, reason: str, proof: str, **h: str) -> Any:
    body = {"reason": reason, "key_proof": proof}
    return certs.post(f"/api/certificates/{cert_id}/revoke", json=body, headers={**who.auth, **h})


def key_proof(key: ProofKey, alg: str, certificate_id: str) -> str:
    """A key_proof as a client makes one with PyJWT."""
    return jwt.encode({"certificate_id": certificate_id}, key, algorithm=alg)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def es_jws_with_alg(key: ec.EllipticCurvePrivateKey, alg: str, payload: dict[str, Any]) -> str:
    """A JWS whose signature by `key` is genuine (SHA-384 for ES384) but whose alg is not
    the one of the key's curve: PyJWT refuses to make one."""
    signing_input = f"{b64(json.dumps({'alg': alg}).encode())}.{b64(json.dumps(payload).encode())}"
    der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA384()))
    r, s = decode_dss_signature(der)
    size = (key.curve.key_size + 7) // 8
    return f"{signing_input}.{b64(r.to_bytes(size, 'big') + s.to_bytes(size, 'big'))}"


def test_a_strangers_revocation_without_proof_blocks_the_key_for_the_stranger_only(
    certs: Any, make_customer: Any, event_types: Callable[[str], list[str]]
) -> None:
    """B certifies A's leaked CSR for a name of B's and reports it compromised: only B is
    refused that key afterwards; A renews and issues with it as before."""
    holder: Customer = make_customer()
    stranger: Customer = make_customer()
    key = ec.generate_private_key(ec.SECP256R1())
    csr = csr_of(key, "leaked.example.com")
    mine = issue_with(certs, holder, csr)
    theirs = issue_with(certs, stranger, csr)
    assert mine.status_code == theirs.status_code == 201

    revoked = revoke(certs, stranger, theirs.json()["id"], "keyCompromise")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"

    assert renew_with(certs, holder, mine.json()["id"], csr).status_code == 201
    assert issue_with(certs, holder, csr).status_code == 201
    assert ["body", "csr"] in error_locs(issue_with(certs, stranger, csr))


def test_an_admins_revocation_without_proof_blocks_the_key_for_the_owner_only(
    certs: Any, make_customer: Any, make_admin: Any
) -> None:
    owner: Customer = make_customer()
    other: Customer = make_customer()
    admin: Customer = make_admin()
    key = ec.generate_private_key(ec.SECP256R1())
    csr = csr_of(key, "owned.example.com")
    cert = issue_with(certs, owner, csr).json()
    assert revoke(certs, admin, cert["id"], "keyCompromise").status_code == 200
    assert ["body", "csr"] in error_locs(issue_with(certs, owner, csr))
    assert issue_with(certs, other, csr).status_code == 201


@pytest.mark.parametrize("key_type", list(PROOF_KEYS))
def test_a_valid_key_proof_blocks_the_key_for_everyone(
    certs: Any, make_customer: Any, key_type: str
) -> None:
    holder: Customer = make_customer()
    stranger: Customer = make_customer()
    make_key, alg = PROOF_KEYS[key_type]
    key = make_key()
    csr = csr_of(key, "proven.example.com")
    theirs = issue_with(certs, stranger, csr).json()  # a stranger certified the holder's CSR
    mine = issue_with(certs, holder, csr).json()
    assert mine["key_type"] == key_type

    proof = key_proof(key, alg, mine["id"])
    revoked = revoke_with(certs, holder, mine["id"], "keyCompromise", proof)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revocation_reason"] == "keyCompromise"

    for who in (holder, stranger, make_customer()):
        assert ["body", "csr"] in error_locs(issue_with(certs, who, csr))
    assert ["body", "csr"] in error_locs(renew_with(certs, stranger, theirs["id"], csr))


UNSIGNED = b64(b'{"alg":"none"}')
# Each bad proof, and a word the refusal's message says of it.
BAD_PROOFS: dict[str, tuple[Callable[[ec.EllipticCurvePrivateKey, str], str], str]] = {
    "another key": (
        lambda key, cert_id: key_proof(ec.generate_private_key(ec.SECP256R1()), "ES256", cert_id),
        "does not verify",
    ),
    "another certificate": (
        lambda key, cert_id: key_proof(key, "ES256", str(uuid.uuid4())),
        "certificate_id",
    ),
    "wrong alg": (
        lambda key, cert_id: es_jws_with_alg(key, "ES384", {"certificate_id": cert_id}),
        "ES256",
    ),
    "alg none": (
        lambda key, cert_id: f"{UNSIGNED}.{b64(json.dumps({'certificate_id': cert_id}).encode())}.",
        "ES256",
    ),
    "crit header": (
        lambda key, cert_id: jwt.encode(
            {"certificate_id": cert_id}, key, algorithm="ES256", headers={"crit": ["exp"]}
        ),
        "protected header",
    ),
    "not a JWS": (lambda key, cert_id: "not-a-jws", "compact JWS"),
    "garbage segments": (lambda key, cert_id: "e30.e30.AAAA", "ES256"),
    "payload not an object": (
        lambda key, cert_id: jwt.api_jws.encode(
            json.dumps([cert_id]).encode(), key, algorithm="ES256"
        ),
        "certificate_id",
    ),
}


@pytest.mark.parametrize("case", list(BAD_PROOFS))
def test_a_bad_key_proof_is_422_and_revokes_nothing(
    certs: Any, make_customer: Any, event_types: Callable[[str], list[str]], case: str
) -> None:
    owner: Customer = make_customer()
    other: Customer = make_customer()
    key = ec.generate_private_key(ec.SECP256R1())
    csr = csr_of(key, "bad-proof.example.com")
    cert = issue_with(certs, owner, csr).json()
    events = event_types(cert["id"])

    make_proof, said = BAD_PROOFS[case]
    proof = make_proof(key, cert["id"])
    body = assert_problem(revoke_with(certs, owner, cert["id"], "keyCompromise", proof), 422)
    [error] = body["errors"]
    assert error["loc"] == ["body", "key_proof"] and said in error["msg"], error
    fetched = certs.get(f"/api/certificates/{cert['id']}", headers=owner.auth).json()
    assert (fetched["status"], fetched["revocation_reason"]) == ("active", None)
    assert event_types(cert["id"]) == events
    assert issue_with(certs, owner, csr).status_code == 201  # nothing blocked either
    assert issue_with(certs, other, csr).status_code == 201

    good = key_proof(key, "ES256", cert["id"])  # the refusal was the proof's, not the route's
    assert revoke_with(certs, owner, cert["id"], "keyCompromise", good).status_code == 200
    assert ["body", "csr"] in error_locs(issue_with(certs, other, csr))


def test_a_key_proof_with_another_reason_is_422_and_revokes_nothing(
    certs: Any, make_customer: Any, event_types: Callable[[str], list[str]]
) -> None:
    owner: Customer = make_customer()
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue_with(certs, owner, csr_of(key, "superseded.example.com")).json()
    events = event_types(cert["id"])
    proof = key_proof(key, "ES256", cert["id"])
    body = assert_problem(revoke_with(certs, owner, cert["id"], "superseded", proof), 422)
    [error] = body["errors"]
    assert error["loc"] == ["body", "key_proof"] and "keyCompromise" in error["msg"], error
    fetched = certs.get(f"/api/certificates/{cert['id']}", headers=owner.auth).json()
    assert (fetched["status"], fetched["revocation_reason"]) == ("active", None)
    assert event_types(cert["id"]) == events
    assert revoke_with(certs, owner, cert["id"], "keyCompromise", proof).status_code == 200


def test_a_revocation_with_key_proof_honours_idempotency_key(
    certs: Any, make_customer: Any, event_types: Callable[[str], list[str]]
) -> None:
    owner: Customer = make_customer()
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue_with(certs, owner, csr_of(key, "idem.example.com")).json()
    proof = key_proof(key, "ES256", cert["id"])
    retry = {"Idempotency-Key": f"kc-{uuid.uuid4()}"}
    first = revoke_with(certs, owner, cert["id"], "keyCompromise", proof, **retry)
    again = revoke_with(certs, owner, cert["id"], "keyCompromise", proof, **retry)
    assert first.status_code == again.status_code == 200
    assert first.json()["updated_at"] == again.json()["updated_at"]
    assert event_types(cert["id"]).count("certificate.revoked") == 1
    # The same key without the proof is another request.
    without = certs.post(
        f"/api/certificates/{cert['id']}/revoke",
        json={"reason": "keyCompromise"},
        headers={**owner.auth, **retry},
    )
    assert ["header", "Idempotency-Key"] in error_locs(without)
