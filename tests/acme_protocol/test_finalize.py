"""ACME finalization (RFC 8555 section 7.4): only a ready order, a CSR naming exactly its
identifiers with an acceptable key, one certificate however many finalize at once, and no
certificate once the domain authorization behind a ready order is deleted."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import josepy as jose
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa

from tests.acme_protocol.conftest import Account, Acme, csr_b64, unique_name
from tests.acme_protocol.resources import (
    csr_der,
    dns,
    domains_of,
    new_order,
    post_as_get,
    ready_order,
)
from tests.acme_protocol.wire import problem


def test_concurrent_finalizations_issue_one_certificate(acme: Acme) -> None:
    account = acme.register()
    name, order = ready_order(acme, account)
    csr = csr_b64([name])
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda _: acme.wire.send(
                    account.key, order["finalize"], {"csr": csr}, kid=account.kid
                ),
                range(4),
            )
        )
    assert sorted(a.status_code for a in answers) == [200, 403, 403, 403]
    for refused in (a for a in answers if a.status_code == 403):
        problem(refused, "orderNotReady", 403)
    listed = acme.wire.http.get(acme.url("/api/certificates"), headers=account.customer.auth)
    assert [c["common_name"] for c in listed.json()["items"]] == [name]


def test_deleted_domain_authorization_no_longer_covers_acme_orders(acme: Acme) -> None:
    """DELETE /api/domains/{id}: no new certificate for the name until authorized again,
    also through an ACME order made ready by it before."""
    account = acme.register()
    name = unique_name("deleted")
    acme.grant(account.customer, name)
    ready = new_order(acme, account, dns(name)).json()
    assert ready["status"] == "ready"
    [domain] = [d for d in domains_of(acme, account.customer) if d["name"] == name]
    gone = acme.wire.http.delete(
        acme.url(f"/api/domains/{domain['id']}"), headers=account.customer.auth
    )
    assert gone.status_code == 204, gone.text
    refused = acme.wire.send(
        account.key, ready["finalize"], {"csr": csr_b64([name])}, kid=account.kid
    )
    problem(refused, "unauthorized", 403)
    listed = acme.wire.http.get(acme.url("/api/certificates"), headers=account.customer.auth)
    assert listed.json()["items"] == []
    assert new_order(acme, account, dns(name)).json()["status"] == "pending"


def test_finalize_before_ready_is_order_not_ready(acme: Acme) -> None:
    account = acme.register()
    name = unique_name()
    order = new_order(acme, account, dns(name)).json()
    response = acme.wire.send(
        account.key, order["finalize"], {"csr": csr_b64([name])}, kid=account.kid
    )
    problem(response, "orderNotReady", 403)
    assert (
        post_as_get(acme, account, order["finalize"].removesuffix("/finalize"))["status"]
        == "pending"
    )


@pytest.mark.parametrize("fault", ["other-name", "extra-name", "missing-name", "garbage"])
def test_csr_whose_names_differ_from_the_order_is_bad_csr(acme: Acme, fault: str) -> None:
    account = acme.register()
    name, second = unique_name(), unique_name()
    acme.grant(account.customer, name)
    acme.grant(account.customer, second)
    order = new_order(acme, account, dns(name, second)).json()
    assert order["status"] == "ready"
    names = {
        "other-name": [name, unique_name()],
        "extra-name": [name, second, unique_name()],
        "missing-name": [name],
        "garbage": [],
    }[fault]
    csr = csr_b64(names) if names else jose.b64encode(b"not a CSR").decode()
    response = acme.wire.send(account.key, order["finalize"], {"csr": csr}, kid=account.kid)
    problem(response, "badCSR", 400)
    order_url = order["finalize"].removesuffix("/finalize")
    assert post_as_get(acme, account, order_url)["status"] == "ready"
    fixed = acme.wire.send(
        account.key, order["finalize"], {"csr": csr_b64([second, name])}, kid=account.kid
    )
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["status"] == "valid"
    assert fixed.json()["certificate"].startswith(acme.url("/acme/cert/"))


@pytest.mark.parametrize(
    "payload", [None, {}, {"csr": 5}, {"csr": ["x"]}], ids=["no-payload", "empty", "int", "list"]
)
def test_finalize_without_a_csr_is_malformed_and_leaves_the_order_ready(
    acme: Acme, payload: Any
) -> None:
    account = acme.register()
    name, order = ready_order(acme, account)
    problem(acme.wire.send(account.key, order["finalize"], payload, kid=account.kid), "malformed")
    order_url = order["finalize"].removesuffix("/finalize")
    assert post_as_get(acme, account, order_url)["status"] == "ready"
    fixed = acme.wire.send(
        account.key, order["finalize"], {"csr": csr_b64([name])}, kid=account.kid
    )
    assert fixed.json()["status"] == "valid", fixed.text


@pytest.mark.parametrize("fault", ["rsa-1024", "rsa-exponent-3", "bad-signature"])
def test_unacceptable_csr_is_bad_csr(acme: Acme, fault: str) -> None:
    account = acme.register()
    name, order = ready_order(acme, account)
    if fault == "bad-signature":
        der = bytearray(csr_der(ec.generate_private_key(ec.SECP256R1()), [name]))
        der[-5] ^= 1
    else:
        exponent = 3 if fault == "rsa-exponent-3" else 65537
        size = 2048 if fault == "rsa-exponent-3" else 1024
        der = bytearray(csr_der(rsa.generate_private_key(exponent, size), [name]))
    csr = jose.b64encode(bytes(der)).decode()
    problem(acme.wire.send(account.key, order["finalize"], {"csr": csr}, kid=account.kid), "badCSR")
    assert (
        post_as_get(acme, account, order["finalize"].removesuffix("/finalize"))["status"] == "ready"
    )


def test_a_csr_with_the_account_key_is_bad_csr(acme: Acme) -> None:
    account = acme.register()
    name, order = ready_order(acme, account)
    own = jose.b64encode(csr_der(account.key.key._wrapped, [name])).decode()
    refused = acme.wire.send(account.key, order["finalize"], {"csr": own}, kid=account.kid)
    problem(refused, "badCSR", 400)
    still = post_as_get(acme, account, order["finalize"].removesuffix("/finalize"))
    assert still["status"] == "ready"  # a better CSR may follow


def _unsupported_key(kind: str) -> Any:
    if kind == "dsa":
        return dsa.generate_private_key(2048)
    if kind == "ed448":
        return ed448.Ed448PrivateKey.generate()
    return ec.generate_private_key({"secp256k1": ec.SECP256K1(), "p521": ec.SECP521R1()}[kind])


def _der_length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def csr_with_two_san_extensions(first: list[str], second: list[str]) -> bytes:
    """A CSR, correctly self-signed, whose request carries two subjectAltName extensions
    (cryptography's builder refuses to make one: built with a stand-in OID of the same
    length, renamed to subjectAltName, signed again)."""
    key = ec.generate_private_key(ec.SECP256R1())
    stand_in = x509.ObjectIdentifier("2.5.29.99")
    san = x509.SubjectAlternativeName([x509.DNSName(n) for n in second])
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in first]), False)
        .add_extension(x509.UnrecognizedExtension(stand_in, san.public_bytes()), False)
        .sign(key, hashes.SHA256())
    )
    tbs = csr.tbs_certrequest_bytes
    stand_in_der, san_der = bytes.fromhex("0603551d63"), bytes.fromhex("0603551d11")
    assert tbs.count(stand_in_der) == 1
    tbs = tbs.replace(stand_in_der, san_der)
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    algorithm = _der(0x30, bytes.fromhex("06082a8648ce3d040302"))  # ecdsa-with-SHA256
    return _der(0x30, tbs + algorithm + _der(0x03, b"\x00" + signature))


def _finalize_and_check_ready(
    acme: Acme, account: Account, order: dict[str, Any], der: bytes
) -> None:
    csr = jose.b64encode(der).decode()
    refused = acme.wire.send(account.key, order["finalize"], {"csr": csr}, kid=account.kid)
    problem(refused, "badCSR", 400)
    order_url = order["finalize"].removesuffix("/finalize")
    assert post_as_get(acme, account, order_url)["status"] == "ready"


# A P-256 key's SubjectPublicKeyInfo algorithm (id-ecPublicKey) and curve (prime256v1), and
# OIDs of the same length that no library here knows.
_ID_EC_PUBLIC_KEY, _UNKNOWN_KEY_ALGORITHM = "06072a8648ce3d0201", "06072a8648ce3d0209"
_PRIME256V1, _UNKNOWN_CURVE = "06082a8648ce3d030107", "06082a8648ce3d030109"


@pytest.mark.parametrize(
    "kind", ["dsa", "secp256k1", "p521", "ed448", "unknown-key-algorithm", "unknown-curve"]
)
def test_csr_with_an_unsupported_key_is_bad_csr_and_leaves_the_order_ready(
    acme: Acme, kind: str
) -> None:
    account = acme.register()
    name, order = ready_order(acme, account)
    if kind.startswith("unknown-"):
        der = csr_der(ec.generate_private_key(ec.SECP256R1()), [name])
        known, unknown = {
            "unknown-key-algorithm": (_ID_EC_PUBLIC_KEY, _UNKNOWN_KEY_ALGORITHM),
            "unknown-curve": (_PRIME256V1, _UNKNOWN_CURVE),
        }[kind]
        assert der.count(bytes.fromhex(known)) == 1
        unreadable = der.replace(bytes.fromhex(known), bytes.fromhex(unknown))
        _finalize_and_check_ready(acme, account, order, unreadable)
        fixed = acme.wire.send(
            account.key, order["finalize"], {"csr": csr_b64([name])}, kid=account.kid
        )
        assert fixed.status_code == 200, fixed.text
        return
    key = _unsupported_key(kind)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
        .sign(key, None if kind == "ed448" else hashes.SHA256())
    )
    _finalize_and_check_ready(acme, account, order, csr.public_bytes(serialization.Encoding.DER))
    fixed = acme.wire.send(
        account.key, order["finalize"], {"csr": csr_b64([name])}, kid=account.kid
    )
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["status"] == "valid"


@pytest.mark.parametrize("second", ["same-names", "other-names"])
def test_csr_with_two_subject_alt_name_extensions_is_bad_csr_and_leaves_the_order_ready(
    acme: Acme, second: str
) -> None:
    account = acme.register()
    name, order = ready_order(acme, account)
    other = [name] if second == "same-names" else [unique_name()]
    der = csr_with_two_san_extensions([name], other)
    assert len(x509.load_der_x509_csr(der).tbs_certrequest_bytes) > 0
    _finalize_and_check_ready(acme, account, order, der)
    fixed = acme.wire.send(
        account.key, order["finalize"], {"csr": csr_b64([name])}, kid=account.kid
    )
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["status"] == "valid"
