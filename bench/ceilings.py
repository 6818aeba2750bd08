"""Crypto ceilings: the same key and signing work as a request, in this process, on one core.

Independent of the service code on purpose: what `cryptography` (and argon2) can do per
second with the service's parameters, with no HTTP, JSON or database around it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.low_level import Type
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A P-256 CA, like the service's default issuing intermediate."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Bench CA"))
        .issuer_name(_name("Bench CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def sign_leaf(
    public_key: PublicKey, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> bytes:
    """A TLS leaf with the extensions the service puts in one, signed, as DER."""
    now = datetime.now(UTC)
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    url = "http://127.0.0.1:5002/api"
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("leaf.bench.example"))
        .issuer_name(ca.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("leaf.bench.example")]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier(url + "/ca/crl")], None, None, None
                    )
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier(url + "/ocsp"),
                    )
                ]
            ),
            critical=False,
        )
    )
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _pkcs8(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_csr(key: ec.EllipticCurvePrivateKey, common_name: str) -> str:
    """A PEM CSR for `common_name`, signed by `key`."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(common_name))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )


def per_second(work: Callable[[], object], seconds: float) -> float:
    """How many times `work` runs per second on this thread (after one warm-up call)."""
    work()
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        work()
        count += 1
    return count / elapsed


def crypto_ceilings(
    seconds: float, argon2_time_cost: int, argon2_memory_cost: int, argon2_parallelism: int
) -> dict[str, float]:
    """Operations per second on one core, keyed by the `crypto` name scenarios refer to."""
    ca, ca_key = make_ca()
    csr_pem = make_csr(ec.generate_private_key(ec.SECP256R1()), "csr.bench.example").encode()
    leaf = x509.load_der_x509_certificate(
        sign_leaf(ec.generate_private_key(ec.SECP256R1()).public_key(), ca, ca_key)
    )

    def ec_p256() -> bytes:
        key = ec.generate_private_key(ec.SECP256R1())
        return _pkcs8(key) + sign_leaf(key.public_key(), ca, ca_key)

    def rsa_2048() -> bytes:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return _pkcs8(key) + sign_leaf(key.public_key(), ca, ca_key)

    def from_csr() -> bytes:
        csr = x509.load_pem_x509_csr(csr_pem)
        assert csr.is_signature_valid
        public_key = csr.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        return sign_leaf(public_key, ca, ca_key)

    def ocsp_response() -> bytes:
        now = datetime.now(UTC)
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                leaf,
                ca,
                hashes.SHA1(),
                ocsp.OCSPCertStatus.GOOD,
                now,
                now + timedelta(hours=24),
                None,
                None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, ca)
        )
        return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    hasher = PasswordHasher(
        time_cost=argon2_time_cost,
        memory_cost=argon2_memory_cost,
        parallelism=argon2_parallelism,
        type=Type.ID,
    )
    stored = hasher.hash("bench-password-123")
    return {
        "ec-p256": per_second(ec_p256, seconds),
        "csr-ec-p256": per_second(from_csr, seconds),
        "rsa-2048": per_second(rsa_2048, seconds),
        "ocsp": per_second(ocsp_response, seconds),
        "argon2-hash": per_second(lambda: hasher.hash("bench-password-123"), seconds),
        "argon2-verify": per_second(lambda: hasher.verify(stored, "bench-password-123"), seconds),
    }


CEILING_LABELS = {
    "ec-p256": "P-256 keygen + PKCS#8 + leaf sign (P-256 CA)",
    "csr-ec-p256": "CSR parse + verify + leaf sign",
    "rsa-2048": "RSA-2048 keygen + PKCS#8 + leaf sign",
    "ocsp": "OCSP response build + sign",
    "argon2-hash": "argon2id hash (service's parameters)",
    "argon2-verify": "argon2id verify (service's parameters)",
}
