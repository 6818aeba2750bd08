"""Building a root and an issuing intermediate, and loading an existing CA."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from certificate_api.pki.keys import KeyType, PrivateKey, generate_private_key, load_private_key_pem

SKEW = timedelta(minutes=5)


class CaImportError(ValueError):
    """A certificate and key that cannot act as this CA."""


@dataclass(frozen=True)
class Issuer:
    """A CA certificate and the private key that signs with it."""

    certificate: x509.Certificate
    private_key: PrivateKey


def signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | None:
    """SHA-384 for P-384, SHA-256 for P-256 and RSA, none for Ed25519 (it hashes itself)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def key_usage(
    *, digital_signature: bool = False, key_encipherment: bool = False, signs_certs: bool = False
) -> x509.KeyUsage:
    """keyUsage with only what our certificates use; `signs_certs` is keyCertSign + cRLSign."""
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certs,
        crl_sign=signs_certs,
        encipher_only=False,
        decipher_only=False,
    )


def authority_key_id(issuer: Issuer) -> x509.AuthorityKeyIdentifier:
    """The AKI of anything `issuer` signs: its own subject key identifier."""
    ski = issuer.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)


def _name(common_name: str, organization: str | None) -> x509.Name:
    attributes = []
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _ca_builder(
    subject: x509.Name,
    issuer_name: x509.Name,
    key: PrivateKey,
    path_length: int,
    validity: tuple[datetime, datetime],
) -> x509.CertificateBuilder:
    not_before, not_after = validity
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(key_usage(signs_certs=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def build_root(
    common_name: str, key: PrivateKey, validity_days: int = 7300, organization: str | None = None
) -> x509.Certificate:
    """A self-signed root: CA, path length 1, keyCertSign and cRLSign."""
    now = datetime.now(UTC)
    name = _name(common_name, organization)
    validity = (now - SKEW, now + timedelta(days=validity_days))
    builder = _ca_builder(name, name, key, 1, validity)
    return builder.sign(key, signature_hash(key))


def serial_hex(certificate: x509.Certificate) -> str:
    """A certificate's serial as the API and its URLs show it: lowercase hex."""
    return format(certificate.serial_number, "x")


def root_urls(public_base_url: str, root: x509.Certificate) -> tuple[str, str]:
    """Where the root's CRL and certificate are published: named in each intermediate."""
    serial = serial_hex(root)
    return f"{public_base_url}/api/ca/crl/{serial}", f"{public_base_url}/api/ca/issuer/{serial}.cer"


INTERMEDIATE_DAYS = 3650  # an issuing CA's validity, cut to its issuer's


def build_intermediate(
    common_name: str,
    key: PrivateKey,
    issuer: Issuer,
    organization: str | None = None,
    public_base_url: str | None = None,
) -> x509.Certificate:
    """An issuing CA under `issuer`: path length 0, never outliving its issuer. With a public
    base URL it names the root's CRL (so it can be revoked) and the root's certificate."""
    now = datetime.now(UTC)
    not_after = min(now + timedelta(days=INTERMEDIATE_DAYS), issuer.certificate.not_valid_after_utc)
    builder = _ca_builder(
        _name(common_name, organization),
        issuer.certificate.subject,
        key,
        0,
        (now - SKEW, not_after),
    ).add_extension(authority_key_id(issuer), critical=False)
    if public_base_url:
        crl_url, issuer_url = root_urls(public_base_url, issuer.certificate)
        point = x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(crl_url)],
            relative_name=None,
            reasons=None,
            crl_issuer=None,
        )
        access = x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(issuer_url)
        )
        builder = builder.add_extension(
            x509.CRLDistributionPoints([point]), critical=False
        ).add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    return builder.sign(issuer.private_key, signature_hash(issuer.private_key))


def create_ca(
    root_key_type: KeyType = KeyType.EC_P384,
    intermediate_key_type: KeyType = KeyType.EC_P256,
    name_prefix: str = "Tessera",
    public_base_url: str | None = None,
) -> tuple[Issuer, Issuer]:
    """A new root and issuing intermediate."""
    root_key = generate_private_key(root_key_type)
    root = Issuer(
        build_root(f"{name_prefix} Root CA", root_key, organization=name_prefix), root_key
    )
    inter_key = generate_private_key(intermediate_key_type)
    inter_cert = build_intermediate(
        f"{name_prefix} Issuing CA 1",
        inter_key,
        root,
        organization=name_prefix,
        public_base_url=public_base_url,
    )
    return root, Issuer(inter_cert, inter_key)


def load_signer(cert_pem: bytes, key_pem: bytes) -> Issuer:
    """A certificate and its key, checked to belong together (a CA or a delegated signer
    such as the OCSP responder)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = load_private_key_pem(key_pem)
    except ValueError as exc:
        raise CaImportError(f"not a PEM certificate and private key: {exc}") from None
    if cert.public_key() != key.public_key():
        raise CaImportError("the private key does not match the certificate")
    return Issuer(cert, key)


def load_issuer(cert_pem: bytes, key_pem: bytes) -> Issuer:
    """A CA certificate and its key, checked to belong together and to be able to issue."""
    signer = load_signer(cert_pem, key_pem)
    cert, key = signer.certificate, signer.private_key
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise CaImportError(f"not a CA certificate: {exc}") from None
    if not constraints.ca or not usage.key_cert_sign:
        raise CaImportError("not a CA certificate: needs basicConstraints CA and keyCertSign")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
        raise CaImportError("CA RSA keys must be at least 2048 bits")
    return Issuer(cert, key)
