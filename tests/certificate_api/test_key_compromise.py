"""keyCompromise destroys the stored key and blocks the public key; RSA exponents other
than 65537 are refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

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
