"""tls-alpn-01 (RFC 8737; RFC 8738 for addresses): judging the certificate a server shows
on the `acme-tls/1` handshake, and saying why a handshake failed. The connection itself is
`Checker.tls_alpn01` (worker/validation.py), under the checker's limits."""

from __future__ import annotations

import ipaddress
import ssl

from cryptography import x509

from core import validation


def refusal(where: str, der: bytes, name: str, key_auth: str) -> str | None:
    """RFC 8737 section 3: exactly one subjectAltName, the identifier (a dNSName, compared
    without case, or an iPAddress), and a critical acmeIdentifier extension holding the DER
    OCTET STRING of SHA-256(key authorization). Why the certificate is refused, or None."""
    oid = x509.ObjectIdentifier(validation.ACME_IDENTIFIER_OID)
    try:
        extensions = x509.load_der_x509_certificate(der).extensions
    except x509.DuplicateExtension as exc:
        return f"{where}: the certificate has the extension {exc.oid.dotted_string} twice"
    except ValueError as exc:
        return f"{where}: the certificate could not be parsed ({exc})"
    expected = _expected_san(name)
    try:
        entries = list(extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return (
            f"{where}: the certificate has no subjectAltName; it must hold exactly "
            f"{_describe(expected)}"
        )
    if len(entries) != 1 or not _same_san(entries[0], expected):
        found = ", ".join(_describe(e) for e in entries) or "nothing"
        return (
            f"{where}: the certificate's subjectAltName must be exactly {_describe(expected)} "
            f"and nothing else (found {found})"
        )
    try:
        extension = extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return f"{where}: the certificate has no acmeIdentifier extension ({oid.dotted_string})"
    if not extension.critical:
        return f"{where}: the acmeIdentifier extension is not marked critical"
    value = extension.value.public_bytes()
    wanted = validation.tls_alpn01_extension_value(key_auth)
    if value == wanted[2:]:
        return (
            f"{where}: the acmeIdentifier extension holds the bare SHA-256 digest; it must be "
            "DER-encoded as an OCTET STRING (04 20, then the 32 bytes)"
        )
    if value != wanted:
        return (
            f"{where}: the acmeIdentifier extension does not hold the SHA-256 of this "
            "challenge's key authorization"
        )
    return None


def _expected_san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _same_san(entry: x509.GeneralName, expected: x509.GeneralName) -> bool:
    if isinstance(expected, x509.DNSName):
        return isinstance(entry, x509.DNSName) and entry.value.lower() == expected.value.lower()
    return entry == expected


def _describe(entry: x509.GeneralName) -> str:
    kinds = {x509.DNSName: "dNSName", x509.IPAddress: "iPAddress"}
    return f"{kinds.get(type(entry), type(entry).__name__)} {entry.value}"


def handshake_error(exc: ssl.SSLError, server_name: str) -> str:
    reason = exc.reason or type(exc).__name__
    if reason == "TLSV1_ALERT_NO_APPLICATION_PROTOCOL":
        return (
            f"the TLS server refused ALPN {validation.TLS_ALPN_PROTOCOL} "
            "(no_application_protocol alert): it is not set up to answer tls-alpn-01"
        )
    if reason == "TLSV1_UNRECOGNIZED_NAME":
        return f"the TLS server does not know the name {server_name} (unrecognized_name alert)"
    return f"TLS handshake failed ({reason})"
