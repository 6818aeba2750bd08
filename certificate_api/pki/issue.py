"""Leaf certificates for TLS servers and clients, from our key or a customer's CSR."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from certificate_api.pki.ca import Issuer, authority_key_id, key_usage, signature_hash
from certificate_api.pki.keys import KeyPolicyError, PublicKey, key_type_of
from pki.names import IpAddress, is_ip, is_valid_name


class CsrError(ValueError):
    """A CSR that cannot be used: unparsable, badly signed, or with a refused key."""


@dataclass(frozen=True)
class LeafRequest:
    """Everything that goes into one leaf, already validated."""

    public_key: PublicKey
    common_name: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[IpAddress, ...]
    not_before: datetime
    not_after: datetime
    serial_number: int
    crl_url: str | None = None
    ocsp_url: str | None = None
    ca_issuers_url: str | None = None


def new_serial() -> int:
    """A random positive serial of up to 128 bits (17 DER octets at most, within RFC 5280's 20)."""
    while True:
        serial = int.from_bytes(secrets.token_bytes(16), "big")
        if serial > 0:
            return serial


def serial_hex(serial: int) -> str:
    """Lowercase hex without separators, as the API shows serials."""
    return format(serial, "x")


def build_leaf(request: LeafRequest, issuer: Issuer) -> x509.Certificate:
    """Sign a leaf: SAN with every name, CA:false, serverAuth+clientAuth, SKI/AKI, CRL DP, AIA.
    A name not in the one form the name parser gives is never signed (ValueError)."""
    for name in (request.common_name, *request.dns_names):
        if not is_valid_name(name):
            raise ValueError(f"{name!r} is not a name in its parsed form; nothing signed")
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dict.fromkeys(request.dns_names)]
    sans += [x509.IPAddress(ip) for ip in dict.fromkeys(request.ip_addresses)]
    # The subject's CN only for a DNS name that fits X.520's 64 characters: an address in a
    # CN is read as a host name by clients (certbot refuses such a certificate), so an
    # address is in the SAN only, as public CAs issue them; an empty subject makes the SAN
    # critical (RFC 5280 section 4.2.1.6).
    in_subject = len(request.common_name) <= 64 and not is_ip(request.common_name)
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, request.common_name)] if in_subject else []
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(request.public_key)
        .serial_number(request.serial_number)
        .not_valid_before(request.not_before)
        .not_valid_after(request.not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=not subject)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # RSA key transport (TLS 1.2 RSA key exchange) needs keyEncipherment.
            key_usage(
                digital_signature=True,
                key_encipherment=isinstance(request.public_key, rsa.RSAPublicKey),
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(request.public_key), critical=False
        )
        .add_extension(
            authority_key_id(issuer),
            critical=False,
        )
    )
    if request.crl_url:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(request.crl_url)],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            critical=False,
        )
    access = []
    if request.ocsp_url:
        access.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(request.ocsp_url)
            )
        )
    if request.ca_issuers_url:
        access.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier(request.ca_issuers_url),
            )
        )
    if access:
        builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    return builder.sign(issuer.private_key, signature_hash(issuer.private_key))


def load_csr(pem: str) -> x509.CertificateSigningRequest:
    """Parse a PEM CSR, check its self-signature and its key."""
    try:
        csr = x509.load_pem_x509_csr(pem.strip().encode())
    except ValueError:
        raise CsrError("csr is not a valid PEM certificate signing request") from None
    try:
        valid = csr.is_signature_valid
    except Exception:  # unsupported signature algorithms raise instead of answering
        valid = False
    if not valid:
        raise CsrError("csr signature does not verify")
    try:
        key_type_of(csr.public_key())
    except KeyPolicyError as exc:
        raise CsrError(str(exc)) from None
    return csr
