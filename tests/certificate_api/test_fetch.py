"""GET one certificate: JSON, the PEM chain, ETags; and the public CA chain."""

from __future__ import annotations

import re
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from schema.base import utcnow
from tests.certificate_api.conftest import PEM_CHAIN
from tests.conftest import Customer

CERTIFICATE_FIELDS = {
    "id",
    "account_id",
    "serial_number",
    "common_name",
    "dns_names",
    "ip_addresses",
    "key_type",
    "is_active",
    "status",
    "revocation_reason",
    "not_before",
    "not_after",
    "certificate_pem",
    "chain_pem",
    "has_private_key",
    "renewed_from",
    "created_at",
    "updated_at",
}
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_issue_reply_has_the_contract_fields_and_the_key(
    certs: Any, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    body = issue(customer)
    assert set(body) == CERTIFICATE_FIELDS | {"private_key_pem"}
    assert body["account_id"] == customer.id and body["revocation_reason"] is None
    for field in ("not_before", "not_after", "created_at", "updated_at"):
        assert RFC3339_UTC.match(body[field]), body[field]
    assert re.fullmatch(r"[0-9a-f]+", body["serial_number"])


def test_get_by_id_is_the_certificate_as_json_without_the_key(
    certs: Any, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    created = issue(customer)
    response = certs.get(f"/api/certificates/{created['id']}", headers=customer.auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == CERTIFICATE_FIELDS  # the private key is in the 201 only
    assert body == {k: v for k, v in created.items() if k != "private_key_pem"}


def test_get_with_pem_accept_gives_leaf_then_chain(
    certs: Any, make_customer: Any, issue: Any, ca_chain: list[x509.Certificate]
) -> None:
    customer: Customer = make_customer()
    created = issue(customer)
    response = certs.get(
        f"/api/certificates/{created['id']}", headers={**customer.auth, "Accept": PEM_CHAIN}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(PEM_CHAIN)
    assert response.text == created["certificate_pem"] + created["chain_pem"]
    parsed = x509.load_pem_x509_certificates(response.content)
    assert len(parsed) == 3
    assert parsed[0] == x509.load_pem_x509_certificate(created["certificate_pem"].encode())
    assert parsed[1:] == ca_chain
    assert "PRIVATE KEY" not in response.text


def test_etag_and_if_none_match_give_304(certs: Any, make_customer: Any, issue: Any) -> None:
    customer: Customer = make_customer()
    url = f"/api/certificates/{issue(customer)['id']}"
    first = certs.get(url, headers=customer.auth)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = certs.get(url, headers={**customer.auth, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag
    other = certs.get(url, headers={**customer.auth, "If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.json() == first.json()


def test_etag_differs_between_json_and_pem(certs: Any, make_customer: Any, issue: Any) -> None:
    customer: Customer = make_customer()
    url = f"/api/certificates/{issue(customer)['id']}"
    as_json = certs.get(url, headers=customer.auth).headers["ETag"]
    as_pem = certs.get(url, headers={**customer.auth, "Accept": PEM_CHAIN}).headers["ETag"]
    assert as_json != as_pem
    stale = certs.get(url, headers={**customer.auth, "Accept": PEM_CHAIN, "If-None-Match": as_json})
    assert stale.status_code == 200


def test_etag_changes_after_a_patch(certs: Any, make_customer: Any, issue: Any) -> None:
    customer: Customer = make_customer()
    url = f"/api/certificates/{issue(customer)['id']}"
    before = certs.get(url, headers=customer.auth).headers["ETag"]
    assert certs.patch(url, json={"is_active": False}, headers=customer.auth).status_code == 200
    after = certs.get(url, headers={**customer.auth, "If-None-Match": before})
    assert after.status_code == 200 and after.json()["status"] == "inactive"
    assert after.headers["ETag"] != before
    unchanged = certs.get(url, headers={**customer.auth, "If-None-Match": after.headers["ETag"]})
    assert unchanged.status_code == 304


def test_etag_changes_when_the_certificate_expires(
    certs: Any, make_customer: Any, issue: Any, set_not_after: Any
) -> None:
    customer: Customer = make_customer()
    created = issue(customer)
    url = f"/api/certificates/{created['id']}"
    before = certs.get(url, headers=customer.auth).headers["ETag"]
    set_not_after(created["id"], utcnow().replace(microsecond=0))
    after = certs.get(url, headers={**customer.auth, "If-None-Match": before})
    assert after.status_code == 200 and after.json()["status"] == "expired"


def test_ca_certificates_is_public_pem_intermediate_then_root(
    certs: Any, make_customer: Any, issue: Any
) -> None:
    response = certs.get("/api/ca/certificates")  # no token needed
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(PEM_CHAIN)
    intermediate, root = x509.load_pem_x509_certificates(response.content)
    intermediate.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    assert "PRIVATE KEY" not in response.text
    # What each certificate's chain_pem holds, and where its AIA caIssuers points.
    assert issue(make_customer())["chain_pem"] == response.text
    der = certs.get("/api/ca/issuer.cer")
    assert der.status_code == 200
    assert der.content == intermediate.public_bytes(serialization.Encoding.DER)
