"""A hold placed by an admin is lifted only by an admin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.certificate_api.conftest import assert_problem
from tests.conftest import Customer


def patch(certs: Any, who: Customer, cert_id: str, active: bool) -> Any:
    return certs.patch(f"/api/certificates/{cert_id}", json={"is_active": active}, headers=who.auth)


def test_owner_cannot_lift_an_admins_hold(
    certs: Any,
    make_customer: Any,
    make_admin: Any,
    issue: Any,
    history_rows: Callable[[str], int],
) -> None:
    admin: Customer = make_admin()
    owner: Customer = make_customer()
    cert = issue(owner)
    assert patch(certs, admin, cert["id"], False).status_code == 200
    rows = history_rows(cert["id"])

    assert_problem(patch(certs, owner, cert["id"], True), 403)
    fetched = certs.get(f"/api/certificates/{cert['id']}", headers=owner.auth).json()
    assert fetched["is_active"] is False and fetched["status"] == "inactive"
    assert history_rows(cert["id"]) == rows  # nothing written

    released = patch(certs, admin, cert["id"], True)
    assert released.status_code == 200 and released.json()["status"] == "active"


def test_owner_lifts_its_own_hold_and_an_admin_may_too(
    certs: Any, make_customer: Any, make_admin: Any, issue: Any
) -> None:
    admin: Customer = make_admin()
    owner: Customer = make_customer()
    cert = issue(owner)
    assert patch(certs, owner, cert["id"], False).status_code == 200
    assert patch(certs, owner, cert["id"], True).status_code == 200
    assert patch(certs, owner, cert["id"], False).status_code == 200
    assert patch(certs, admin, cert["id"], True).status_code == 200


def test_an_admins_hold_is_the_admins_even_after_the_owner_asks_again(
    certs: Any, make_customer: Any, make_admin: Any, issue: Any
) -> None:
    """Setting the state it already has changes nothing: the hold stays the admin's."""
    admin: Customer = make_admin()
    owner: Customer = make_customer()
    cert = issue(owner)
    assert patch(certs, admin, cert["id"], False).status_code == 200
    assert patch(certs, owner, cert["id"], False).status_code == 200
    assert_problem(patch(certs, owner, cert["id"], True), 403)


def test_a_hold_the_owner_placed_at_issuance_is_the_owners(
    certs: Any, make_customer: Any, issue: Any
) -> None:
    owner: Customer = make_customer()
    cert = issue(owner, is_active=False)
    assert patch(certs, owner, cert["id"], True).status_code == 200


def ocsp_hold_reason(certs: Any, cert: dict[str, Any]) -> x509.ReasonFlags | None:
    """The revocation reason OCSP gives for the certificate (None: not revoked)."""
    leaf = x509.load_pem_x509_certificate(cert["certificate_pem"].encode())
    issuer = x509.load_pem_x509_certificates(cert["chain_pem"].encode())[0]
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA256()).build()
    response = certs.post(
        "/api/ocsp",
        content=request.public_bytes(serialization.Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
    )
    assert response.status_code == 200
    answer = ocsp.load_der_ocsp_response(response.content)
    if answer.certificate_status is not ocsp.OCSPCertStatus.REVOKED:
        return None
    return answer.revocation_reason


def crl_hold_reason(certs: Any, cert: dict[str, Any]) -> x509.ReasonFlags | None:
    """The reason the CRL gives for the certificate (None: not on it)."""
    response = certs.get("/api/ca/crl")
    assert response.status_code == 200
    crl = x509.load_der_x509_crl(response.content)
    entry = crl.get_revoked_certificate_by_serial_number(int(cert["serial_number"], 16))
    if entry is None:
        return None
    reason: x509.ReasonFlags = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    return reason


def test_an_admin_holding_what_the_owner_held_makes_it_the_admins_hold(
    certs: Any, make_customer: Any, make_admin: Any, issue: Any
) -> None:
    admin: Customer = make_admin()
    owner: Customer = make_customer()
    cert = issue(owner)
    assert patch(certs, owner, cert["id"], False).status_code == 200
    held = patch(certs, admin, cert["id"], False)
    assert held.status_code == 200
    assert (held.json()["is_active"], held.json()["status"]) == (False, "inactive")

    assert_problem(patch(certs, owner, cert["id"], True), 403)
    renew = certs.post(f"/api/certificates/{cert['id']}/renew", json={}, headers=owner.auth)
    assert_problem(renew, 409)
    fetched = certs.get(f"/api/certificates/{cert['id']}", headers=owner.auth).json()
    assert (fetched["is_active"], fetched["status"]) == (False, "inactive")
    assert ocsp_hold_reason(certs, cert) is x509.ReasonFlags.certificate_hold
    assert crl_hold_reason(certs, cert) is x509.ReasonFlags.certificate_hold

    released = patch(certs, admin, cert["id"], True)
    assert released.status_code == 200 and released.json()["status"] == "active"
    assert ocsp_hold_reason(certs, cert) is None and crl_hold_reason(certs, cert) is None


def test_taking_over_the_owners_hold_is_history_without_an_event(
    certs: Any,
    make_customer: Any,
    make_admin: Any,
    issue: Any,
    history_rows: Callable[[str], int],
    event_types: Callable[[str], list[str]],
) -> None:
    """The state stays the one it had (no event); the history records who holds it now."""
    admin: Customer = make_admin()
    owner: Customer = make_customer()
    cert = issue(owner)
    assert patch(certs, owner, cert["id"], False).status_code == 200
    rows, events = history_rows(cert["id"]), event_types(cert["id"])
    assert events == ["certificate.created", "certificate.deactivated"]

    assert patch(certs, admin, cert["id"], False).status_code == 200
    assert event_types(cert["id"]) == events
    assert history_rows(cert["id"]) == rows + 1
    assert patch(certs, admin, cert["id"], False).status_code == 200  # its own hold: nothing
    assert history_rows(cert["id"]) == rows + 1
    assert event_types(cert["id"]) == events
