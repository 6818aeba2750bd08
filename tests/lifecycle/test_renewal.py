"""POST /api/certificates/{id}/renew: same names and key type, a new key unless a CSR,
`renewed_from`, `revoke_previous` in the same transaction, `Idempotency-Key`, and 409 for
revoked or admin-held certificates."""

from __future__ import annotations

import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import text

from tests.certificate_api.conftest import assert_problem, error_locs
from tests.conftest import Customer, postgres_only


def renew(certs: Any, customer: Customer, cert_id: str, **kwargs: Any) -> Any:
    return certs.post(f"/api/certificates/{cert_id}/renew", headers=customer.auth, **kwargs)


def public_key_der(body: dict[str, Any]) -> bytes:
    cert = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sans(body: dict[str, Any]) -> list[str]:
    cert = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(str(name.value) for name in ext)


def test_renewal_has_the_same_names_and_key_type_and_a_new_key(
    certs: Any, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    old = issue(
        customer,
        dns_names=["alt.example.org"],
        ip_addresses=["192.0.2.7"],
        key_type="ec-p384",
        validity_days=10,
    )
    response = renew(certs, customer, old["id"], json={"validity_days": 30})
    assert response.status_code == 201, response.text
    new = response.json()
    assert response.headers["location"] == f"/api/certificates/{new['id']}"
    assert new["renewed_from"] == old["id"] and new["id"] != old["id"]
    for field in ("common_name", "dns_names", "ip_addresses", "key_type", "account_id"):
        assert new[field] == old[field], field
    assert sans(new) == sans(old)
    assert new["private_key_pem"] and new["private_key_pem"] != old["private_key_pem"]
    assert public_key_der(new) != public_key_der(old)
    assert new["has_private_key"] is True and new["status"] == "active"
    # The old one stays as it was; the new one is fetched with its link.
    assert (
        certs.get(f"/api/certificates/{old['id']}", headers=customer.auth).json()["status"]
        == "active"
    )
    fetched = certs.get(f"/api/certificates/{new['id']}", headers=customer.auth).json()
    assert fetched["renewed_from"] == old["id"] and "private_key_pem" not in fetched
    assert old["renewed_from"] is None


def test_renewal_with_a_csr_keeps_the_key_with_the_client(
    certs: Any, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    old = issue(customer)  # ec-p256
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ignored.example")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    response = renew(certs, customer, old["id"], json={"csr": csr})
    assert response.status_code == 201, response.text
    new = response.json()
    assert new["has_private_key"] is False and new["private_key_pem"] is None
    assert public_key_der(new) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert new["common_name"] == old["common_name"]
    other_type = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(ec.generate_private_key(ec.SECP384R1()), hashes.SHA384())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    assert error_locs(renew(certs, customer, old["id"], json={"csr": other_type})) == [
        ["body", "key_type"]
    ]


def test_revoke_previous_revokes_the_old_one_as_superseded(
    certs: Any, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    old = issue(customer)
    response = renew(certs, customer, old["id"], json={"revoke_previous": True})
    assert response.status_code == 201, response.text
    before = certs.get(f"/api/certificates/{old['id']}", headers=customer.auth).json()
    assert (before["status"], before["revocation_reason"]) == ("revoked", "superseded")
    # Revoked now, it cannot be renewed again.
    assert_problem(renew(certs, customer, old["id"]), 409)


@postgres_only
def test_revoke_previous_commits_in_the_renewals_transaction(
    certs: Any, make_customer: Any, issue: Any, engine: Any
) -> None:
    customer: Customer = make_customer()
    old = issue(customer)
    new = renew(certs, customer, old["id"], json={"revoke_previous": True}).json()
    with engine.connect() as conn:
        xmins = conn.execute(
            text("SELECT DISTINCT xmin::text FROM certificates WHERE id IN (:a, :b)"),
            {"a": uuid.UUID(old["id"]), "b": uuid.UUID(new["id"])},
        ).all()
        types = conn.execute(
            text(
                "SELECT DISTINCT e.xmin::text FROM events e WHERE e.subject_id IN (:a, :b)"
                " AND e.type IN ('certificate.revoked', 'certificate.created')"
                " AND (e.subject_id = :b OR e.type = 'certificate.revoked')"
            ),
            {"a": uuid.UUID(old["id"]), "b": uuid.UUID(new["id"])},
        ).all()
    assert len(xmins) == 1  # the new row and the old one's revocation: one transaction
    assert types == xmins  # and both events with them


def test_a_replayed_idempotency_key_returns_the_first_renewal(
    certs: Any, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    old = issue(customer)
    headers = {**customer.auth, "Idempotency-Key": f"renew-{uuid.uuid4()}"}
    first = certs.post(f"/api/certificates/{old['id']}/renew", json={}, headers=headers)
    again = certs.post(f"/api/certificates/{old['id']}/renew", json={}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    other = certs.post(
        f"/api/certificates/{old['id']}/renew", json={"validity_days": 5}, headers=headers
    )
    assert error_locs(other) == [["header", "Idempotency-Key"]]
    listed = certs.get("/api/certificates", headers=customer.auth).json()["items"]
    assert [item["renewed_from"] for item in listed].count(old["id"]) == 1


def test_who_may_renew_what(certs: Any, make_customer: Any, make_admin: Any, issue: Any) -> None:
    owner: Customer = make_customer()
    stranger: Customer = make_customer()
    admin: Customer = make_admin()
    cert = issue(owner)
    assert_problem(renew(certs, stranger, cert["id"]), 404)
    assert_problem(renew(certs, owner, str(uuid.uuid4())), 404)
    assert renew(certs, owner, "not-a-uuid").status_code == 422
    assert error_locs(renew(certs, owner, cert["id"], json={"validity_days": 100000})) == [
        ["body", "validity_days"]
    ]
    assert error_locs(renew(certs, owner, cert["id"], json={"names": ["x"]})) == [["body", "names"]]

    # The owner's own hold does not stop a renewal; an administrator's does.
    own_hold = issue(owner)
    held = certs.patch(
        f"/api/certificates/{own_hold['id']}", json={"is_active": False}, headers=owner.auth
    )
    assert held.status_code == 200
    assert renew(certs, owner, own_hold["id"]).status_code == 201
    admin_hold = issue(owner)
    held = certs.patch(
        f"/api/certificates/{admin_hold['id']}", json={"is_active": False}, headers=admin.auth
    )
    assert held.status_code == 200
    assert_problem(renew(certs, owner, admin_hold["id"]), 409)

    revoked = issue(owner)
    gone = certs.post(
        f"/api/certificates/{revoked['id']}/revoke",
        json={"reason": "keyCompromise"},
        headers=owner.auth,
    )
    assert gone.status_code == 200
    assert_problem(renew(certs, owner, revoked["id"]), 409)
    assert certs.post(f"/api/certificates/{cert['id']}/renew").status_code == 401


def csr_of(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )


def test_a_renewal_with_a_csr_of_a_compromised_key_is_refused(
    certs: Any, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    compromised = ec.generate_private_key(ec.SECP256R1())
    leaked = issue(customer, csr=csr_of(compromised))
    gone = certs.post(
        f"/api/certificates/{leaked['id']}/revoke",
        json={"reason": "keyCompromise"},
        headers=customer.auth,
    )
    assert gone.status_code == 200
    old = issue(customer)  # ec-p256, a key of the service's
    response = renew(certs, customer, old["id"], json={"csr": csr_of(compromised)})
    assert error_locs(response) == [["body", "csr"]]
    listed = certs.get("/api/certificates", headers=customer.auth).json()["items"]
    assert old["id"] not in [item["renewed_from"] for item in listed]  # nothing stored


def test_an_admin_renews_only_their_own_certificates(
    certs: Any, make_customer: Any, make_admin: Any, issue: Any
) -> None:
    owner: Customer = make_customer()
    admin: Customer = make_admin()
    cert = issue(owner)
    assert_problem(renew(certs, admin, cert["id"]), 404)  # a renewal issues to the caller
