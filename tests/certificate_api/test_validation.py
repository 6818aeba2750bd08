"""What POST /api/certificates refuses, with a 422 naming the field and nothing stored; and
issuance from a customer's CSR."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.certificate_api.conftest import assert_problem, error_locs
from tests.conftest import Customer


def make_csr(key: Any, common_name: str = "csr.example.com") -> str:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def with_broken_signature(pem: str) -> str:
    """The same CSR with the last byte of its signature flipped: it still parses."""
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    body = base64.encodebytes(bytes(der)).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


def refused(
    certs: Any, customer: Customer, rows: Callable[[str], int], payload: dict[str, Any]
) -> list[list[Any]]:
    """POST the payload, expect a 422 and no new certificate row; return the error locs."""
    before = rows(customer.id)
    response = certs.post("/api/certificates", json=payload, headers=customer.auth)
    locs = error_locs(response)
    assert rows(customer.id) == before
    return locs


def test_csr_issues_without_a_private_key_and_private_key_is_410(
    certs: Any, make_customer: Any, certificate_rows: Callable[[str], int]
) -> None:
    customer: Customer = make_customer()
    key = ec.generate_private_key(ec.SECP384R1())
    response = certs.post(
        "/api/certificates",
        json={"common_name": "csr.example.com", "csr": make_csr(key)},
        headers=customer.auth,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["has_private_key"] is False and body.get("private_key_pem") is None
    assert body["key_type"] == "ec-p384"
    leaf = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert leaf.public_key().public_bytes(
        serialization.Encoding.DER, spki
    ) == key.public_key().public_bytes(serialization.Encoding.DER, spki)
    assert certificate_rows(customer.id) == 1
    fetched = certs.get(f"/api/certificates/{body['id']}", headers=customer.auth)
    assert fetched.json()["has_private_key"] is False
    gone = certs.get(f"/api/certificates/{body['id']}/private-key", headers=customer.auth)
    assert_problem(gone, 410)


def test_csr_key_type_given_must_match_the_csr(
    certs: Any, make_customer: Any, certificate_rows: Callable[[str], int]
) -> None:
    customer: Customer = make_customer()
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()))
    payload = {"common_name": "csr.example.com", "csr": csr, "key_type": "rsa-2048"}
    assert refused(certs, customer, certificate_rows, payload) == [["body", "key_type"]]


@pytest.mark.parametrize(
    "csr",
    [
        pytest.param(
            lambda: with_broken_signature(make_csr(ec.generate_private_key(ec.SECP256R1()))),
            id="bad-signature",
        ),
        pytest.param(
            lambda: make_csr(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
            id="rsa-1024",
        ),
        pytest.param(
            lambda: make_csr(ec.generate_private_key(ec.SECP521R1())), id="unsupported-curve"
        ),
        pytest.param(
            lambda: (
                "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3Ny\n"
                "-----END CERTIFICATE REQUEST-----\n"
            ),
            id="garbage-pem",
        ),
        pytest.param(lambda: "hello", id="not-pem"),
    ],
)
def test_unusable_csr_is_422_on_the_csr_field_and_nothing_stored(
    certs: Any,
    make_customer: Any,
    certificate_rows: Callable[[str], int],
    csr: Callable[[], str],
) -> None:
    customer: Customer = make_customer()
    payload = {"common_name": "csr.example.com", "csr": csr()}
    assert refused(certs, customer, certificate_rows, payload) == [["body", "csr"]]


def test_rsa_1024_csr_detail_says_why(certs: Any, make_customer: Any) -> None:
    customer: Customer = make_customer()
    csr = make_csr(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    response = certs.post(
        "/api/certificates",
        json={"common_name": "a.example.com", "csr": csr},
        headers=customer.auth,
    )
    body = assert_problem(response, 422)
    assert "2048" in body["detail"] and "2048" in body["errors"][0]["msg"]


INVALID_DNS_NAMES = {
    "label-too-long": "a" * 64 + ".example.com",
    "name-too-long": ".".join(["a" * 62] * 4) + ".com",  # 255 characters
    "underscore": "my_host.example.com",
    "double-wildcard": "*.*.example.com",
    "wildcard-not-leftmost": "www.*.example.com",
    "partial-wildcard": "w*.example.com",
    "wildcard-over-tld": "*.com",
    "empty-label": "a..example.com",
    "leading-dot": ".example.com",
    "trailing-hyphen": "foo-.example.com",
    "leading-hyphen": "-foo.example.com",
    "space": "exa mple.com",
    "single-label": "localhost",
    "numeric-tld": "host.123",
    "invalid-a-label": "xn--zz.example.com",
    "trailing-line-feed": "www.example.com\n",
    "inner-line-feed": "victim.example\n.attacker.test",
    "trailing-carriage-return": "www.example.com\r",
    "trailing-crlf": "www.example.com\r\n",
    "leading-space": " www.example.com",
    "trailing-space": "www.example.com ",
    "tab": "www\t.example.com",
    "trailing-dot": "www.example.com.",
    "nul": "www.example.com\x00",
    "soft-hyphen": "www\u00ad.example.com",
    "ideographic-full-stop": "www.example\u3002com",
    "one-letter-tld": "example.c",
}


@pytest.mark.parametrize("name", INVALID_DNS_NAMES.values(), ids=INVALID_DNS_NAMES.keys())
def test_invalid_dns_name_is_422_on_its_index_and_nothing_stored(
    certs: Any, make_customer: Any, certificate_rows: Callable[[str], int], name: str
) -> None:
    customer: Customer = make_customer()
    payload = {"common_name": "ok.example.com", "dns_names": ["fine.example.com", name]}
    assert refused(certs, customer, certificate_rows, payload) == [["body", "dns_names", 1]]


@pytest.mark.parametrize(
    "name",
    [
        "my_host.example.com",
        "*.*.example.com",
        "a..example.com",
        "foo-.example.com",
        "paypal.com\n.attacker.test",
        "www.example.com\n",
        " www.example.com",
        "www.example.com.",
    ],
    ids=[
        "underscore",
        "double-wildcard",
        "empty-label",
        "trailing-hyphen",
        "inner-line-feed",
        "trailing-line-feed",
        "leading-space",
        "trailing-dot",
    ],
)
def test_invalid_common_name_is_422_on_common_name(
    certs: Any, make_customer: Any, certificate_rows: Callable[[str], int], name: str
) -> None:
    customer: Customer = make_customer()
    payload = {"common_name": name}
    assert refused(certs, customer, certificate_rows, payload) == [["body", "common_name"]]


INVALID_IPS = {
    "octet-over-255": "256.1.1.1",
    "three-octets": "10.0.1",
    "cidr": "192.0.2.0/24",
    "bad-hex": "2001:db8::g",
    "two-double-colons": "2001::db8::1",
    "hostname": "example.com",
    "ipv6-zone-id": "fe80::1%eth0",
    "trailing-line-feed": "10.0.0.1\n",
    "leading-space": " 10.0.0.1",
    "leading-zero": "010.0.0.1",
}


@pytest.mark.parametrize("ip", INVALID_IPS.values(), ids=INVALID_IPS.keys())
def test_invalid_ip_is_422_on_its_index_and_nothing_stored(
    certs: Any, make_customer: Any, certificate_rows: Callable[[str], int], ip: str
) -> None:
    customer: Customer = make_customer()
    payload = {"common_name": "ok.example.com", "ip_addresses": ["192.0.2.1", ip]}
    assert refused(certs, customer, certificate_rows, payload) == [["body", "ip_addresses", 1]]


def test_valid_names_are_accepted(certs: Any, make_customer: Any, issue: Any) -> None:
    customer: Customer = make_customer()
    longest_label = "a" * 63 + ".example.com"
    body = issue(
        customer,
        common_name="*.example.com",
        dns_names=[longest_label, "x-1.example.com", "9.example.com"],
        ip_addresses=["10.0.0.1", "2001:db8::1"],
    )
    assert body["dns_names"] == ["*.example.com", longest_label, "x-1.example.com", "9.example.com"]
    assert body["ip_addresses"] == ["10.0.0.1", "2001:db8::1"]


BAD_BODIES = {
    "unknown-field": ({"common_name": "a.example.com", "colour": "blue"}, ["body", "colour"]),
    "missing-common-name": ({"dns_names": ["a.example.com"]}, ["body", "common_name"]),
    "dns-names-not-a-list": (
        {"common_name": "a.example.com", "dns_names": "b.example.com"},
        ["body", "dns_names"],
    ),
    "common-name-not-a-string": ({"common_name": 42}, ["body", "common_name"]),
    "validity-not-a-number": (
        {"common_name": "a.example.com", "validity_days": "ten"},
        ["body", "validity_days"],
    ),
    "validity-fraction": (
        {"common_name": "a.example.com", "validity_days": 1.5},
        ["body", "validity_days"],
    ),
    "is-active-not-a-bool": (
        {"common_name": "a.example.com", "is_active": "maybe"},
        ["body", "is_active"],
    ),
    "unknown-key-type": (
        {"common_name": "a.example.com", "key_type": "rsa-1024"},
        ["body", "key_type"],
    ),
    "validity-zero": (
        {"common_name": "a.example.com", "validity_days": 0},
        ["body", "validity_days"],
    ),
    "validity-negative": (
        {"common_name": "a.example.com", "validity_days": -1},
        ["body", "validity_days"],
    ),
}


@pytest.mark.parametrize(("payload", "loc"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_body_is_422_naming_the_field_and_nothing_stored(
    certs: Any,
    make_customer: Any,
    certificate_rows: Callable[[str], int],
    payload: dict[str, Any],
    loc: list[Any],
) -> None:
    customer: Customer = make_customer()
    assert loc in refused(certs, customer, certificate_rows, payload)


def test_validity_days_bounds_follow_max_validity_days(
    certs: Any, make_customer: Any, certificate_rows: Callable[[str], int], issue: Any
) -> None:
    customer: Customer = make_customer()
    maximum = certs.app.state.runtime.settings.max_validity_days
    assert maximum == 199  # the contract's default
    over = {"common_name": "a.example.com", "validity_days": maximum + 1}
    assert refused(certs, customer, certificate_rows, over) == [["body", "validity_days"]]
    for days in (1, maximum):
        leaf = x509.load_pem_x509_certificate(
            issue(customer, validity_days=days)["certificate_pem"].encode()
        )
        lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc  # days + the backdate
        assert timedelta(days=days) < lifetime <= timedelta(days=days, hours=1)


def test_malformed_json_is_400_problem(
    certs: Any, make_customer: Any, certificate_rows: Callable[[str], int]
) -> None:
    customer: Customer = make_customer()
    response = certs.post(
        "/api/certificates",
        content=b'{"common_name": "a.example.com",',
        headers={**customer.auth, "Content-Type": "application/json"},
    )
    assert_problem(response, 400)
    assert certificate_rows(customer.id) == 0


def test_body_over_64_kib_is_413_problem(
    certs: Any, make_customer: Any, certificate_rows: Callable[[str], int]
) -> None:
    customer: Customer = make_customer()
    huge = {"common_name": "a.example.com", "dns_names": ["x" * 200 + ".example.com"] * 400}
    response = certs.post("/api/certificates", json=huge, headers=customer.auth)
    assert_problem(response, 413)
    assert certificate_rows(customer.id) == 0


def test_validation_errors_do_not_echo_the_csr(certs: Any, make_customer: Any) -> None:
    customer: Customer = make_customer()
    secret_looking = "-----BEGIN CERTIFICATE REQUEST-----\nc2VjcmV0LXNlY3JldA==\n-----END"
    response = certs.post(
        "/api/certificates",
        json={"common_name": "a.example.com", "csr": secret_looking},
        headers=customer.auth,
    )
    assert_problem(response, 422)
    assert "c2VjcmV0LXNlY3JldA" not in response.text
