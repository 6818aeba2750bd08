"""Issuance: every key type, the key that comes back, and what is inside the leaf."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from tests.certificate_api.conftest import KEY_TYPES, Issued
from tests.conftest import Customer

EXPECTED_KEY = {
    "ec-p256": "secp256r1",
    "ec-p384": "secp384r1",
    "rsa-2048": "rsa-2048",
    "rsa-3072": "rsa-3072",
    "rsa-4096": "rsa-4096",
    "ed25519": "ed25519",
}


def _describe(public: Any) -> str:
    """What kind of public key this is, in the API's words where they differ."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        return public.curve.name
    if isinstance(public, rsa.RSAPublicKey):
        assert public.public_numbers().e == 65537
        return f"rsa-{public.key_size}"
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "ed25519"
    return type(public).__name__


def _parse(timestamp: str) -> datetime:
    return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_each_key_type_issues_with_a_matching_pkcs8_key(
    by_key_type: dict[str, Issued], key_type: str
) -> None:
    issued = by_key_type[key_type]
    body = issued.body
    assert body["key_type"] == key_type and body["has_private_key"] is True
    assert body["status"] == "active" and body["is_active"] is True
    pem = body["private_key_pem"]
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    private_key = serialization.load_pem_private_key(pem.encode(), password=None)
    public = issued.leaf.public_key()
    assert _spki(private_key.public_key()) == _spki(public)
    assert _describe(public) == EXPECTED_KEY[key_type]


def test_default_key_type_is_ec_p256(certs: Any, make_customer: Any, issue: Any) -> None:
    customer: Customer = make_customer()
    body = issue(customer)
    leaf = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    public = leaf.public_key()
    assert body["key_type"] == "ec-p256"
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"


def test_serial_is_positive_random_and_shown_as_lowercase_hex(
    by_key_type: dict[str, Issued],
) -> None:
    serials = set()
    for issued in by_key_type.values():
        serial = issued.leaf.serial_number
        assert serial > 0
        # 16 random bytes: anything under 64 bits would mean little entropy went in.
        assert 64 <= serial.bit_length() <= 159
        assert issued.body["serial_number"] == format(serial, "x")
        serials.add(serial)
    assert len(serials) == len(by_key_type)


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_san_holds_common_name_dns_names_and_ips(
    by_key_type: dict[str, Issued], key_type: str
) -> None:
    issued = by_key_type[key_type]
    san = issued.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical is False  # the subject has a CN
    assert san.value.get_values_for_type(x509.DNSName) == [
        "localhost.example.com",
        "www.example.com",
        "*.api.example.com",
    ]
    assert san.value.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    cn = issued.leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in cn] == ["localhost.example.com"]
    assert issued.body["dns_names"] == [
        "localhost.example.com",
        "www.example.com",
        "*.api.example.com",
    ]
    assert issued.body["ip_addresses"] == ["127.0.0.1", "::1"]


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_key_usage_fits_the_key_type(by_key_type: dict[str, Issued], key_type: str) -> None:
    usage = by_key_type[key_type].leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical is True
    assert usage.value.digital_signature is True
    assert usage.value.key_encipherment is key_type.startswith("rsa")
    assert not (
        usage.value.content_commitment
        or usage.value.data_encipherment
        or usage.value.key_agreement
        or usage.value.key_cert_sign
        or usage.value.crl_sign
    )


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_leaf_is_a_tls_server_and_client_end_entity(
    by_key_type: dict[str, Issued], key_type: str
) -> None:
    extensions = by_key_type[key_type].leaf.extensions
    eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    constraints = extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical is True
    assert constraints.value.ca is False and constraints.value.path_length is None


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_key_identifiers_link_leaf_to_intermediate(
    by_key_type: dict[str, Issued], ca_chain: list[x509.Certificate], key_type: str
) -> None:
    leaf = by_key_type[key_type].leaf
    ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(leaf.public_key())
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    issuer_ski = ca_chain[0].extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == issuer_ski.digest
    assert leaf.issuer == ca_chain[0].subject


def test_leaf_points_at_the_crl_and_ocsp_of_this_service(by_key_type: dict[str, Issued]) -> None:
    leaf = by_key_type["ec-p256"].leaf
    points = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    urls = [name.value for point in points for name in point.full_name or []]
    chain = by_key_type["ec-p256"].body["chain_pem"].encode()
    issuer = format(x509.load_pem_x509_certificates(chain)[0].serial_number, "x")
    assert len(urls) == 1 and urls[0].endswith(f"/api/ca/crl/{issuer}")
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    methods = {d.access_method._name: d.access_location.value for d in aia}
    assert methods["OCSP"].endswith("/api/ocsp")
    assert methods["caIssuers"].endswith(f"/api/ca/issuer/{issuer}.cer")


def test_validity_follows_validity_days_with_a_small_backdate(
    certs: Any, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    body = issue(customer, validity_days=7)
    leaf = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    backdate = leaf.not_valid_after_utc - leaf.not_valid_before_utc - timedelta(days=7)
    assert timedelta(0) < backdate <= timedelta(hours=1)
    # validity_days counts from the moment of issuance; notBefore lies a little before it.
    issued_at = leaf.not_valid_after_utc - timedelta(days=7)
    assert issued_at <= _parse(body["created_at"]) <= issued_at + timedelta(hours=1)
    assert _parse(body["not_before"]) == leaf.not_valid_before_utc
    assert _parse(body["not_after"]) == leaf.not_valid_after_utc


def test_default_validity_is_90_days(certs: Any, make_customer: Any, issue: Any) -> None:
    customer: Customer = make_customer()
    leaf = x509.load_pem_x509_certificate(issue(customer)["certificate_pem"].encode())
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert timedelta(days=90) < lifetime <= timedelta(days=90, hours=1)


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_signature_is_ecdsa_sha256_by_the_p256_intermediate(
    by_key_type: dict[str, Issued], ca_chain: list[x509.Certificate], key_type: str
) -> None:
    leaf = by_key_type[key_type].leaf
    intermediate_key = ca_chain[0].public_key()
    assert isinstance(intermediate_key, ec.EllipticCurvePublicKey)
    assert intermediate_key.curve.name == "secp256r1"
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA256)
    assert leaf.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    leaf.verify_directly_issued_by(ca_chain[0])


def test_names_are_normalized_to_lowercase_a_labels(
    certs: Any, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    body = issue(customer, common_name="WWW.Example.COM", dns_names=["bücher.example"])
    assert body["common_name"] == "www.example.com"
    assert body["dns_names"] == ["www.example.com", "xn--bcher-kva.example"]
    leaf = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["www.example.com", "xn--bcher-kva.example"]


def test_ip_common_name_becomes_an_ip_san(certs: Any, make_customer: Any, issue: Any) -> None:
    customer: Customer = make_customer()
    body = issue(customer, common_name="2001:DB8::1", ip_addresses=["192.0.2.10"])
    assert body["common_name"] == "2001:db8::1"
    assert body["dns_names"] == [] and body["ip_addresses"] == ["2001:db8::1", "192.0.2.10"]
    leaf = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == []
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("2001:db8::1"),
        ipaddress.ip_address("192.0.2.10"),
    ]
    # An address is never the subject's CN (clients read a CN as a host name): SAN only.
    assert list(leaf.subject) == []
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_common_name_over_64_characters_leaves_subject_empty_and_san_critical(
    certs: Any, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    long_name = "a" * 60 + ".example.com"  # fine as a DNS name, too long for an X.520 CN
    body = issue(customer, common_name=long_name)
    leaf = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    assert len(leaf.subject) == 0
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical is True and san.value.get_values_for_type(x509.DNSName) == [long_name]


def test_issued_inactive_is_held_from_the_start(certs: Any, make_customer: Any, issue: Any) -> None:
    customer: Customer = make_customer()
    body = issue(customer, is_active=False)
    assert body["is_active"] is False and body["status"] == "inactive"
