"""Certificates issued through ACME are the customer's (REST listing, events), revokeCert
(RFC 8555 section 7.6) by the owner's account or the certificate's own key with what OCSP and
the REST API then say, and renewalInfo (RFC 9773)."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import josepy as jose
import pytest
from acme import client as acme_client
from acme.crypto_util import make_csr
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from sqlalchemy import select

from schema.db import make_sessionmaker
from schema.events import Event
from tests.acme_protocol.conftest import Account, Acme, Issued, ocsp_status, unique_name
from tests.acme_protocol.wire import ec_key, library_client, problem

DER = serialization.Encoding.DER


def issue(acme: Acme, account: Account, names: int = 1) -> Issued:
    """A certificate through ACME for fresh names granted to the customer (no challenge)."""
    wanted = [unique_name("cert") for _ in range(names)]
    for name in wanted:
        acme.grant(account.customer, name)
    return acme.issue(account, wanted)


def rest_certificate(acme: Acme, account: Account, certificate_id: str) -> dict[str, Any]:
    response = acme.wire.http.get(
        acme.url(f"/api/certificates/{certificate_id}"), headers=account.customer.auth
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def revoke(acme: Acme, signer: jose.JWK, issued: Issued, reason: Any = None, **kid: Any) -> Any:
    """A raw revokeCert; signed with `kid=` an account URL, or else by `signer`'s jwk."""
    payload: dict[str, Any] = {
        "certificate": jose.b64encode(issued.leaf.public_bytes(DER)).decode()
    }
    if reason is not None:
        payload["reason"] = reason
    return acme.wire.send(signer, acme.url("/acme/revoke-cert"), payload, **kid)


def events_of(acme: Acme, issued: Issued, kind: str) -> list[dict[str, Any]]:
    """The certificate's events of one type, as the webhook bodies recorded."""
    with make_sessionmaker(acme.service.engine)() as session:
        rows = session.scalars(
            select(Event.payload).where(
                Event.subject_id == uuid.UUID(issued.certificate_id), Event.type == kind
            )
        ).all()
    return [dict(row) for row in rows]


def cert_key_jwk(issued: Issued) -> jose.JWK:
    return jose.JWKEC(key=issued.key)


def test_issued_certificate_is_the_customers_with_its_event(acme: Acme) -> None:
    account = acme.register()
    issued = issue(acme, account, names=2)
    listed = acme.wire.http.get(acme.url("/api/certificates"), headers=account.customer.auth)
    assert listed.status_code == 200, listed.text
    [item] = [c for c in listed.json()["items"] if c["id"] == issued.certificate_id]
    assert item["account_id"] == account.customer.id
    assert item["serial_number"] == format(issued.leaf.serial_number, "x")
    assert item["status"] == "active"
    assert item["has_private_key"] is False
    names = set(issued.order.body.identifiers[i].value for i in range(2))
    assert {item["common_name"], *item["dns_names"]} == names
    shown = rest_certificate(acme, account, issued.certificate_id)
    assert x509.load_pem_x509_certificate(shown["certificate_pem"].encode()) == issued.leaf
    [event] = events_of(acme, issued, "certificate.created")
    data = event["data"]
    assert data["certificate_id"] == issued.certificate_id
    assert data["account_id"] == account.customer.id


def test_chain_is_leaf_then_the_intermediate_that_signed_it(acme: Acme) -> None:
    account = acme.register()
    issued = issue(acme, account)
    assert len(issued.certificates) == 2
    issued.leaf.verify_directly_issued_by(issued.issuer)
    ca = acme.wire.http.get(acme.url("/api/ca/certificates"))
    assert x509.load_pem_x509_certificates(ca.content)[0] == issued.issuer


def test_another_customers_account_cannot_fetch_the_certificate(acme: Acme) -> None:
    owner, other = acme.register(), acme.register()
    issued = issue(acme, owner)
    url = str(issued.order.body.certificate)
    problem(acme.wire.send(other.key, url, kid=other.kid), "malformed", 404)


def test_revoke_by_the_certificates_own_key(acme: Acme) -> None:
    account = acme.register()
    issued = issue(acme, account)
    by_key = acme_client.ClientV2(
        library_client(acme.base, cert_key_jwk(issued)).directory,
        acme_client.ClientNetwork(cert_key_jwk(issued), alg=jose.ES256),
    )
    by_key.revoke(issued.leaf, 4)
    shown = rest_certificate(acme, account, issued.certificate_id)
    assert (shown["status"], shown["revocation_reason"]) == ("revoked", "superseded")
    answer = ocsp_status(acme, issued)
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason == x509.ReasonFlags.superseded
    [event] = events_of(acme, issued, "certificate.revoked")
    assert event["data"]["account_id"] == account.customer.id


def test_revoke_by_the_owning_account_and_again_is_already_revoked(acme: Acme) -> None:
    account = acme.register()
    issued = issue(acme, account)
    account.client.revoke(issued.leaf, 0)
    assert rest_certificate(acme, account, issued.certificate_id)["status"] == "revoked"
    assert ocsp_status(acme, issued).certificate_status == ocsp.OCSPCertStatus.REVOKED
    again = revoke(acme, account.key, issued, kid=account.kid)
    problem(again, "alreadyRevoked", 400)
    by_key = revoke(acme, cert_key_jwk(issued), issued)
    problem(by_key, "alreadyRevoked", 400)


def test_revoke_by_another_acme_account_of_the_same_customer(acme: Acme) -> None:
    first = acme.register()
    second = acme.register(first.customer)
    issued = issue(acme, first)
    response = revoke(acme, second.key, issued, 5, kid=second.kid)
    assert response.status_code == 200, response.text
    shown = rest_certificate(acme, first, issued.certificate_id)
    assert shown["revocation_reason"] == "cessationOfOperation"


def test_revoke_by_another_customers_account_is_unauthorized(acme: Acme) -> None:
    owner, other = acme.register(), acme.register()
    issued = issue(acme, owner)
    response = revoke(acme, other.key, issued, kid=other.kid)
    problem(response, "unauthorized", 403)
    assert rest_certificate(acme, owner, issued.certificate_id)["status"] == "active"
    assert ocsp_status(acme, issued).certificate_status == ocsp.OCSPCertStatus.GOOD


def test_revoke_signed_by_an_unrelated_key_is_unauthorized(acme: Acme) -> None:
    account = acme.register()
    issued = issue(acme, account)
    problem(revoke(acme, ec_key(), issued), "unauthorized", 403)
    assert rest_certificate(acme, account, issued.certificate_id)["status"] == "active"


@pytest.mark.parametrize("reason", [2, 6, 7, 8, 10, -1, "1", True])
def test_bad_reason_code_is_bad_revocation_reason(acme: Acme, reason: Any) -> None:
    account = acme.register()
    issued = issue(acme, account)
    response = revoke(acme, account.key, issued, reason, kid=account.kid)
    problem(response, "badRevocationReason", 400)
    assert rest_certificate(acme, account, issued.certificate_id)["status"] == "active"


def test_revoke_of_something_that_is_no_certificate_is_malformed(acme: Acme) -> None:
    account = acme.register()
    url = acme.url("/acme/revoke-cert")
    for payload in ({}, {"certificate": "not base64 !"}, {"certificate": "AAAA"}):
        problem(acme.wire.send(account.key, url, payload, kid=account.kid), "malformed", 400)


def renewal_info(acme: Acme, leaf: x509.Certificate) -> Any:
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier is not None
    serial = leaf.serial_number
    serial_der = serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True)
    cert_id = f"{jose.b64encode(aki.key_identifier).decode()}.{jose.b64encode(serial_der).decode()}"
    return acme.wire.http.get(acme.url(f"/acme/renewal-info/{cert_id}"))


def window(response: Any) -> tuple[datetime.datetime, datetime.datetime]:
    assert response.status_code == 200, response.text
    assert int(response.headers["Retry-After"]) > 0
    suggested = response.json()["suggestedWindow"]
    start = datetime.datetime.fromisoformat(suggested["start"])
    end = datetime.datetime.fromisoformat(suggested["end"])
    assert start < end
    return start, end


def test_renewal_info_suggests_a_window_in_the_last_third(acme: Acme) -> None:
    account = acme.register()
    issued = issue(acme, account)
    assert acme.url("/acme/renewal-info") == account.client.directory["renewalInfo"]
    start, end = window(renewal_info(acme, issued.leaf))
    before, after = issued.leaf.not_valid_before_utc, issued.leaf.not_valid_after_utc
    assert start >= before + (after - before) * 2 / 3 - datetime.timedelta(seconds=1)
    assert end <= after
    when, _ask_again = account.client.renewal_time(issued.chain_pem.encode())
    assert when is not None
    assert start <= when <= end


def test_renewal_info_of_a_held_certificate_has_begun(acme: Acme) -> None:
    account = acme.register()
    issued = issue(acme, account)
    held = acme.wire.http.patch(
        acme.url(f"/api/certificates/{issued.certificate_id}"),
        json={"is_active": False},
        headers=account.customer.auth,
    )
    assert held.status_code == 200, held.text
    start, end = window(renewal_info(acme, issued.leaf))
    now = datetime.datetime.now(datetime.UTC)
    assert start <= now <= end


def test_renewal_info_of_a_revoked_certificate_has_begun(acme: Acme) -> None:
    account = acme.register()
    issued = issue(acme, account)
    assert revoke(acme, account.key, issued, 1, kid=account.kid).status_code == 200
    start, _end = window(renewal_info(acme, issued.leaf))
    assert start <= datetime.datetime.now(datetime.UTC)


@pytest.mark.parametrize("cert_id", ["garbage", "no-dot-here", ".AQ", "AQ.", "!!.??", "AQID.%20"])
def test_renewal_info_of_a_garbage_id_is_malformed(acme: Acme, cert_id: str) -> None:
    response = acme.wire.http.get(acme.url(f"/acme/renewal-info/{cert_id}"))
    problem(response, "malformed")


def test_renewal_info_of_an_unknown_certificate_is_404(acme: Acme) -> None:
    account = acme.register()
    issued = issue(acme, account)
    aki = issued.leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier is not None
    aki_b64 = jose.b64encode(aki.key_identifier).decode()
    unknown_serial = f"{aki_b64}.{jose.b64encode(bytes([1, 2])).decode()}"
    problem(acme.wire.http.get(acme.url(f"/acme/renewal-info/{unknown_serial}")), "malformed", 404)
    serial = issued.leaf.serial_number
    serial_der = serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True)
    other_aki = f"{jose.b64encode(bytes(20)).decode()}.{jose.b64encode(serial_der).decode()}"
    problem(acme.wire.http.get(acme.url(f"/acme/renewal-info/{other_aki}")), "malformed", 404)


def test_key_revoked_as_compromised_is_refused_in_a_later_csr(acme: Acme) -> None:
    account = acme.register()
    issued = issue(acme, account)
    name = issued.order.body.identifiers[0].value
    assert revoke(acme, cert_key_jwk(issued), issued, 1).status_code == 200
    shown = rest_certificate(acme, account, issued.certificate_id)
    assert shown["revocation_reason"] == "keyCompromise"
    order = acme.wire.send(
        account.key,
        acme.url("/acme/new-order"),
        {"identifiers": [{"type": "dns", "value": name}]},
        kid=account.kid,
    ).json()
    pem = issued.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    der = x509.load_pem_x509_csr(make_csr(pem, [name])).public_bytes(DER)
    csr = jose.b64encode(der).decode()
    refused = acme.wire.send(account.key, order["finalize"], {"csr": csr}, kid=account.kid)
    problem(refused, "badCSR", 400)


def finalize_with_key(acme: Acme, account: Account, key: Any) -> Any:
    """A new order for a fresh name granted to the account's customer, finalized with a CSR
    carrying `key`: the raw answer."""
    name = unique_name("kc")
    acme.grant(account.customer, name)
    order = acme.wire.send(
        account.key,
        acme.url("/acme/new-order"),
        {"identifiers": [{"type": "dns", "value": name}]},
        kid=account.kid,
    ).json()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    der = x509.load_pem_x509_csr(make_csr(pem, [name])).public_bytes(DER)
    csr = jose.b64encode(der).decode()
    return acme.wire.send(account.key, order["finalize"], {"csr": csr}, kid=account.kid)


def test_key_revoked_by_its_own_key_is_refused_to_every_customer(acme: Acme) -> None:
    """A revokeCert signed by the certificate's key proves possession of it."""
    owner = acme.register()
    issued = issue(acme, owner)
    assert revoke(acme, cert_key_jwk(issued), issued, 1).status_code == 200
    for account in (owner, acme.register()):
        problem(finalize_with_key(acme, account, issued.key), "badCSR", 400)


def test_key_revoked_by_the_owners_account_is_refused_to_that_customer_only(acme: Acme) -> None:
    """A revokeCert signed by the account's key proves nothing of the certificate's key: it
    stays usable by other customers."""
    owner = acme.register()
    issued = issue(acme, owner)
    assert revoke(acme, owner.key, issued, 1, kid=owner.kid).status_code == 200
    shown = rest_certificate(acme, owner, issued.certificate_id)
    assert shown["revocation_reason"] == "keyCompromise"
    problem(finalize_with_key(acme, owner, issued.key), "badCSR", 400)
    problem(finalize_with_key(acme, acme.register(owner.customer), issued.key), "badCSR", 400)
    other = finalize_with_key(acme, acme.register(), issued.key)
    assert other.status_code == 200 and other.json()["status"] == "valid", other.text


def cert_id_of(leaf: x509.Certificate) -> str:
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier is not None
    serial = leaf.serial_number.to_bytes((leaf.serial_number.bit_length() + 8) // 8, "big")
    return f"{jose.b64encode(aki.key_identifier).decode()}.{jose.b64encode(serial).decode()}"


def test_replaces_names_a_certificate_of_the_same_customer(acme: Acme) -> None:
    account = acme.register()
    issued = issue(acme, account)
    [name] = [i.value for i in issued.order.body.identifiers]
    replacing = acme.wire.send(
        account.key,
        acme.url("/acme/new-order"),
        {"identifiers": [{"type": "dns", "value": name}], "replaces": cert_id_of(issued.leaf)},
        kid=account.kid,
    )
    assert replacing.status_code == 201, replacing.text
    assert replacing.json()["replaces"] == cert_id_of(issued.leaf)
    stranger = acme.register()  # another customer
    refused = acme.wire.send(
        stranger.key,
        acme.url("/acme/new-order"),
        {"identifiers": [{"type": "dns", "value": name}], "replaces": cert_id_of(issued.leaf)},
        kid=stranger.kid,
    )
    problem(refused, "malformed", 400)
