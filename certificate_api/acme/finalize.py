"""Finalization's request to the core: the CSR, checked to ask for exactly the order's
names (RFC 8555 section 7.4), as the REST API's issuance request."""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from josepy.b64 import b64decode
from josepy.jwk import JWK

from core.acme.jws import raw_key
from core.acme.problems import AcmeProblem
from core.keys import spki_sha256
from core.orders import IssueRequest
from pki import names


def bad_csr(detail: str) -> AcmeProblem:
    """The CSR is not acceptable; the order stays ready for a better one."""
    return AcmeProblem("badCSR", detail)


def _normal(value: str) -> str:
    try:
        return str(names.parse_ip(value)) if names.is_ip(value) else names.parse_dns_name(value)
    except (names.InvalidName, ValueError):
        raise bad_csr(f"the CSR names {value!r}, which is not a valid name") from None


def issue_request(
    payload: dict[str, Any], order_names: Sequence[str], account_key: JWK
) -> IssueRequest:
    """The core's request for a finalize payload: the CSR's names must be the order's, no
    more and no fewer (its common name, if any, one of them), and its key not the account's
    (a key that signs for the account never serves a TLS endpoint too)."""
    encoded = payload.get("csr")
    if not isinstance(encoded, str):
        raise AcmeProblem("malformed", "finalize needs the CSR, DER in base64url")
    try:
        csr = x509.load_der_x509_csr(b64decode(encoded))
    except (binascii.Error, ValueError):
        raise bad_csr("the CSR is not DER in base64url") from None
    try:
        public_key = csr.public_key()
    except (UnsupportedAlgorithm, ValueError):
        raise bad_csr(
            "the CSR's public key is of an unsupported kind; use EC P-256/P-384, RSA or Ed25519"
        ) from None
    if spki_sha256(public_key) == spki_sha256(raw_key(account_key)):
        raise bad_csr("the CSR's key is the ACME account's key: use another key")
    try:
        extensions = csr.extensions
    except x509.DuplicateExtension as exc:
        raise bad_csr(f"the CSR carries the extension {exc.oid.dotted_string} twice") from None
    except ValueError:
        raise bad_csr("the CSR's extensions cannot be read") from None
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = [_normal(n) for n in san.get_values_for_type(x509.DNSName)]
        ips = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        dns, ips = [], []
    except ValueError:
        raise bad_csr("the CSR's subjectAltName cannot be read") from None
    common = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if len(common) > 1:
        raise bad_csr("the CSR has more than one common name")
    cn = _normal(common[0]) if common else None
    requested = set(dns) | set(ips) | ({cn} if cn else set())
    ordered = {_normal(n) for n in order_names}
    if requested != ordered:
        extra = ", ".join(sorted(requested - ordered)) or "none"
        missing = ", ".join(sorted(ordered - requested)) or "none"
        raise bad_csr(
            f"the CSR's names must be the order's: not in the order: {extra}; "
            f"missing from the CSR: {missing}"
        )
    first = cn or (sorted(dns)[0] if dns else sorted(ips)[0])
    return IssueRequest(
        common_name=first,
        dns_names=sorted(set(dns) - {first}),
        ip_addresses=sorted(set(ips) - {first}),
        csr=csr.public_bytes(serialization.Encoding.PEM).decode(),
    )
