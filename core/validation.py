"""What a challenge expects (RFC 8555 section 8): pure values, shared by the REST domain
authorizations and ACME. The checks that go out to the network are in worker/validation.py."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import secrets
import uuid

HTTP01_PATH = "/.well-known/acme-challenge/"
TLS_ALPN_PROTOCOL = "acme-tls/1"  # RFC 8737 section 6.2
ACME_IDENTIFIER_OID = "1.3.6.1.5.5.7.1.31"  # id-pe-acmeIdentifier, RFC 8737 section 6.1


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 8555 section 6.1)."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def new_token() -> str:
    """A challenge token: 128 bits of entropy at least (RFC 8555 section 8.1), base64url."""
    return b64url(secrets.token_bytes(32))


def account_thumbprint(account_id: uuid.UUID) -> str:
    """What stands for the account key's JWK thumbprint for an API account (which has no
    key): a value bound to the account, so a key authorization names whose proof it is."""
    return b64url(hashlib.sha256(f"tessera-account:{account_id}".encode()).digest())


def key_authorization(token: str, thumbprint: str) -> str:
    """`token || '.' || thumbprint` (RFC 8555 section 8.1); ACME passes the JWK thumbprint."""
    return f"{token}.{thumbprint}"


def dns01_record_name(name: str) -> str:
    """Where the dns-01 TXT record goes (RFC 8555 section 8.4)."""
    return f"_acme-challenge.{name.removeprefix('*.')}"


def dns01_record_value(key_auth: str) -> str:
    """The dns-01 TXT value: base64url(SHA-256(key authorization))."""
    return b64url(hashlib.sha256(key_auth.encode()).digest())


def http01_url(name: str, port: int, token: str) -> str:
    """Where the http-01 key authorization is fetched (an IPv6 literal in brackets)."""
    host = f"[{name}]" if ":" in name else name
    suffix = "" if port == 80 else f":{port}"
    return f"http://{host}{suffix}{HTTP01_PATH}{token}"


def http01_body_matches(body: bytes, key_auth: str) -> bool:
    """Whether a fetched body is the key authorization; trailing white space is allowed
    (RFC 8555 section 8.3: a server answering with a newline is common)."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return False
    return secrets.compare_digest(text.rstrip(" \t\r\n"), key_auth)


def tls_alpn01_extension_value(key_auth: str) -> bytes:
    """The DER of the acmeIdentifier extension's value (RFC 8737 section 3): an OCTET STRING
    (tag 0x04, length 32) holding SHA-256 of the key authorization."""
    return b"\x04\x20" + hashlib.sha256(key_auth.encode()).digest()


def tls_alpn01_server_name(name: str) -> str:
    """The TLS SNI the tls-alpn-01 check sends: the name itself, or for an IP address its
    reverse-DNS name (`4.3.2.1.in-addr.arpa`, nibbles under `ip6.arpa`; RFC 8738 section 6)."""
    try:
        return ipaddress.ip_address(name).reverse_pointer
    except ValueError:
        return name
