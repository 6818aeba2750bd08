"""Revocation on the wire: CRLs (RFC 5280 §5) and OCSP responses (RFC 6960). Crypto only."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import CRLEntryExtensionOID, ExtendedKeyUsageOID, ExtensionOID

from certificate_api.pki.ca import SKEW, Issuer, authority_key_id, key_usage, signature_hash
from certificate_api.pki.keys import KeyType, generate_private_key

# The contract's reason names, as RFC 5280 spells them, and certificateHold for a hold.
REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
    "certificateHold": x509.ReasonFlags.certificate_hold,
    # Only for a CA on its root's CRL.
    "cACompromise": x509.ReasonFlags.ca_compromise,
}


CRL_REASON = CRLEntryExtensionOID.CRL_REASON
CRL_NUMBER = ExtensionOID.CRL_NUMBER
AUTHORITY_KEY_IDENTIFIER = ExtensionOID.AUTHORITY_KEY_IDENTIFIER


@dataclass(frozen=True)
class Revoked:
    """One certificate that relying parties must not trust now."""

    serial: int
    revoked_at: datetime
    reason: str  # a key of REASONS


def _reason_flag(reason: str) -> x509.ReasonFlags | None:
    """The reason to encode; RFC 5280 §5.3.1 says leave `unspecified` out rather than send it."""
    flag = REASONS[reason]
    return None if flag is x509.ReasonFlags.unspecified else flag


def build_crl(
    issuer: Issuer,
    entries: Iterable[Revoked],
    number: int,
    this_update: datetime,
    next_update: datetime,
) -> bytes:
    """A complete CRL in DER: CRL number, AKI, one entry per serial with its reason code.

    The builder is given the whole entry list at once: its `add_revoked_certificate` copies
    the list on every call, which is quadratic (minutes at 100,000 entries).
    """
    reason_extensions: dict[str, list[x509.Extension[x509.ExtensionType]]] = {
        name: [x509.Extension(CRL_REASON, False, x509.CRLReason(flag))]
        for name in REASONS
        if (flag := _reason_flag(name)) is not None
    }
    revoked = [
        x509.RevokedCertificateBuilder(
            entry.serial, entry.revoked_at, reason_extensions.get(entry.reason, [])
        ).build()
        for entry in entries
    ]
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=issuer.certificate.subject,
        last_update=this_update,
        next_update=next_update,
        extensions=[
            x509.Extension(CRL_NUMBER, False, x509.CRLNumber(number)),
            x509.Extension(AUTHORITY_KEY_IDENTIFIER, False, authority_key_id(issuer)),
        ],
        revoked_certificates=revoked,
    )
    crl = builder.sign(issuer.private_key, signature_hash(issuer.private_key))
    return crl.public_bytes(serialization.Encoding.DER)


def build_responder(issuer: Issuer, key_type: KeyType, now: datetime, days: int) -> Issuer:
    """A delegated OCSP responder certificate (RFC 6960 §4.2.2.2), issued by `issuer`.

    It carries id-pkix-ocsp-nocheck, so relying parties do not ask about the responder itself;
    its short life is the revocation story instead, and it is renewed well before it ends.
    """
    key = generate_private_key(key_type)
    issuer_names = issuer.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    issuer_cn = str(issuer_names[0].value) if issuer_names else "CA"
    subject = x509.Name(
        [
            *issuer.certificate.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME),
            x509.NameAttribute(x509.NameOID.COMMON_NAME, f"{issuer_cn} OCSP Responder"[-64:]),
        ]
    )
    not_after = min(now + timedelta(days=days), issuer.certificate.not_valid_after_utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(authority_key_id(issuer), critical=False)
        .sign(issuer.private_key, signature_hash(issuer.private_key))
    )
    return Issuer(certificate, key)


# --- OCSP ----------------------------------------------------------------------------------


class OcspMalformed(ValueError):
    """A request that is not a single well-formed OCSP request."""


@dataclass(frozen=True)
class OcspQuestion:
    """What a relying party asked: one certificate of one issuer, maybe with a nonce."""

    request: ocsp.OCSPRequest
    serial: int
    nonce: x509.OCSPNonce | None


def parse_request(der: bytes) -> OcspQuestion:
    """Parse a DER OCSPRequest; anything else is OcspMalformed."""
    try:
        request = ocsp.load_der_ocsp_request(der)
        serial = request.serial_number
        nonce: x509.OCSPNonce | None = None
        with contextlib.suppress(x509.ExtensionNotFound):
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value
    except (ValueError, TypeError) as exc:
        raise OcspMalformed(str(exc)) from None
    return OcspQuestion(request, serial, nonce)


_HASHES: dict[type[hashes.HashAlgorithm], str] = {
    hashes.SHA1: "sha1",
    hashes.SHA256: "sha256",
    hashes.SHA384: "sha384",
    hashes.SHA512: "sha512",
}


def _public_key_bits(certificate: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING's contents, which an OCSP CertID's key hash covers."""
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raise TypeError(f"unsupported issuer key {type(key).__name__}")


def asks_about(question: OcspQuestion, issuer: x509.Certificate) -> bool:
    """Whether the request's CertID names this issuer (its name hash and key hash)."""
    name = _HASHES.get(type(question.request.hash_algorithm))
    if name is None:
        return False
    request = question.request
    return (
        hashlib.new(name, issuer.subject.public_bytes()).digest() == request.issuer_name_hash
        and hashlib.new(name, _public_key_bits(issuer)).digest() == request.issuer_key_hash
    )


@dataclass(frozen=True)
class CertStatus:
    """The answer for one certificate: good, revoked (when, why) or unknown."""

    status: ocsp.OCSPCertStatus
    revoked_at: datetime | None = None
    reason: str | None = None


def respond(
    question: OcspQuestion,
    answer: CertStatus,
    responder: Issuer,
    this_update: datetime,
    next_update: datetime,
) -> bytes:
    """A signed, successful OCSP response in DER, echoing the nonce when one was sent."""
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=question.request.issuer_name_hash,
        issuer_key_hash=question.request.issuer_key_hash,
        serial_number=question.serial,
        algorithm=question.request.hash_algorithm,
        cert_status=answer.status,
        this_update=this_update,
        next_update=next_update,
        revocation_time=answer.revoked_at,
        revocation_reason=_reason_flag(answer.reason) if answer.reason else None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, responder.certificate)
    builder = builder.certificates([responder.certificate])
    if question.nonce is not None:
        builder = builder.add_extension(question.nonce, critical=False)
    response = builder.sign(responder.private_key, signature_hash(responder.private_key))
    return response.public_bytes(serialization.Encoding.DER)


def refuse(status: ocsp.OCSPResponseStatus) -> bytes:
    """An unsigned error response: malformedRequest, unauthorized, internalError, tryLater."""
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )
