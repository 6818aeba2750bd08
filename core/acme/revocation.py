"""revokeCert (RFC 8555 section 7.6) and renewalInfo (RFC 9773): which certificate a
request means, who may revoke it, and when it should be renewed. The revocation itself is
the core's one path (`core.revocation.revoke`)."""

from __future__ import annotations

import binascii
import math
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from josepy.b64 import b64decode
from josepy.jwk import JWK
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.acme.jws import raw_key
from core.acme.problems import AcmeProblem, malformed, not_found, unauthorized
from core.keys import spki_sha256
from schema.acme import AcmeAccount
from schema.certificates import Certificate

# RFC 5280 reason codes a subscriber may give, by the names the REST API takes.
REASONS = {
    0: "unspecified",
    1: "keyCompromise",
    3: "affiliationChanged",
    4: "superseded",
    5: "cessationOfOperation",
    9: "privilegeWithdrawn",
}
RENEWAL_INFO_RETRY = timedelta(hours=6)  # how often clients should ask again


def reason_name(code: Any) -> str:
    """The reason a revokeCert request gives (unspecified when none)."""
    if code is None:
        return REASONS[0]
    if not isinstance(code, int) or isinstance(code, bool) or code not in REASONS:
        allowed = ", ".join(str(c) for c in REASONS)
        raise AcmeProblem("badRevocationReason", f"reason must be one of {allowed}")
    return REASONS[code]


def certificate_to_revoke(
    session: Session,
    payload: dict[str, Any],
    account: AcmeAccount | None,
    key: JWK | None,
) -> Certificate:
    """The certificate a revokeCert request names, if the signer may revoke it: the ACME
    account of the customer that owns it (`account`), or the certificate's own key (`key`,
    a JWS with `jwk`). Another customer's certificate is refused, never revealed."""
    encoded = payload.get("certificate")
    if not isinstance(encoded, str):
        raise malformed("revokeCert needs the certificate, DER in base64url")
    try:
        leaf = x509.load_der_x509_certificate(b64decode(encoded))
    except (binascii.Error, ValueError):
        raise malformed("the certificate is not DER in base64url") from None
    cert = session.scalars(
        select(Certificate).where(Certificate.serial_number == format(leaf.serial_number, "x"))
    ).first()
    if cert is None or x509.load_pem_x509_certificate(cert.certificate_pem.encode()) != leaf:
        raise not_found("certificate issued by this CA")
    if account is not None and account.account_id != cert.account_id:
        raise unauthorized("the certificate is not this account's")
    if key is not None and spki_sha256(raw_key(key)) != spki_sha256(leaf.public_key()):
        raise unauthorized("the JWS is signed by neither the certificate's key nor its owner")
    if cert.revoked_at is not None:  # its customer's deletion, say: no one left to act for
        raise AcmeProblem("alreadyRevoked", "the certificate is already revoked")
    return cert


def certificate_by_cert_id(session: Session, cert_id: str) -> Certificate:
    """The certificate an RFC 9773 CertID names: base64url(AKI keyIdentifier) "."
    base64url(serial number's DER integer bytes)."""
    aki_text, dot, serial_text = cert_id.partition(".")
    try:
        if not dot or not aki_text or not serial_text:
            raise ValueError
        aki = b64decode(aki_text)
        serial = int.from_bytes(b64decode(serial_text), "big", signed=True)
    except (binascii.Error, ValueError):
        raise malformed("a renewal-info id is base64url(AKI).base64url(serial)") from None
    cert = session.scalars(
        select(Certificate).where(Certificate.serial_number == format(serial, "x"))
    ).first()
    if cert is None:
        raise not_found("certificate")
    leaf = x509.load_pem_x509_certificate(cert.certificate_pem.encode())
    try:
        ext = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        raise not_found("certificate") from None
    if ext.key_identifier != aki:
        raise not_found("certificate")
    return cert


def renewal_window(cert: Certificate, now: datetime) -> tuple[datetime, datetime]:
    """When to renew: within the last third of the validity (from two thirds to five
    sixths of it); for a revoked or held certificate, a window that has already begun."""
    if cert.revoked_at is not None or not cert.is_active:
        return now - timedelta(hours=1), now + timedelta(hours=1)
    lifetime = cert.not_after - cert.not_before
    start = cert.not_before + lifetime * 2 / 3
    end = cert.not_before + lifetime * 5 / 6
    return start, end


def retry_after_seconds() -> int:
    """The Retry-After of a renewalInfo answer."""
    return math.ceil(RENEWAL_INFO_RETRY.total_seconds())
