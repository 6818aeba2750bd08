"""From a request to a signed certificate: names, keys, CSR, validity checked, then X.509.
CPU only: no database here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from cryptography import x509

from certificate_api.authority.service import IssuingCa
from certificate_api.pki.issue import CsrError, LeafRequest, build_leaf, load_csr, new_serial
from certificate_api.pki.keypool import KeyPool
from certificate_api.pki.keys import (
    KeyType,
    PublicKey,
    generate_private_key,
    key_type_of,
    private_key_to_pem,
)
from core.errors import Invalid
from pki import names
from schema.base import utcnow

# Clients' clocks drift: a certificate valid from a few minutes ago works everywhere at once.
BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class IssueRequest:
    """What a client asks for, as it asked (the REST body's fields, by name)."""

    common_name: str
    dns_names: list[str] = field(default_factory=list)
    ip_addresses: list[str] = field(default_factory=list)
    key_type: str | None = None
    validity_days: int | None = None
    csr: str | None = None
    is_active: bool = True


@dataclass(frozen=True)
class Limits:
    """The operator's bounds on validity."""

    default_validity_days: int
    max_validity_days: int


@dataclass(frozen=True)
class IssueOrder:
    """A request whose names, key and validity have been checked."""

    common_name: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[names.IpAddress, ...]
    key_type: KeyType
    csr_public_key: PublicKey | None
    validity_days: int
    is_active: bool


@dataclass(frozen=True)
class Issued:
    """A signed certificate, and the private key when we generated it."""

    id: uuid.UUID
    issuer_id: uuid.UUID
    certificate: x509.Certificate
    serial_number: str
    key_type: KeyType
    private_key_pem: bytes | None


def _dns(value: str, path: list[str | int]) -> str:
    try:
        return names.parse_dns_name(value)
    except names.InvalidName as exc:
        raise Invalid.field(path, str(exc)) from None


def _names(request: IssueRequest) -> tuple[str, list[str], list[names.IpAddress]]:
    """The common name, the DNS names and the IP addresses, each checked and normalized
    (the common name is one of the names too)."""
    dns: list[str] = []
    ips: list[names.IpAddress] = []
    if names.is_ip(request.common_name):
        ips.append(names.parse_ip(request.common_name))
        cn = str(ips[0])
    else:
        cn = _dns(request.common_name, ["common_name"])
        dns.append(cn)
    dns += [_dns(name, ["dns_names", i]) for i, name in enumerate(request.dns_names)]
    for i, value in enumerate(request.ip_addresses):
        try:
            ips.append(names.parse_ip(value))
        except names.InvalidName as exc:
            raise Invalid.field(["ip_addresses", i], str(exc)) from None
    return cn, dns, ips


def _key(request: IssueRequest) -> tuple[KeyType, PublicKey | None]:
    """The key type, and the CSR's public key when the client keeps its own key."""
    if request.csr is None:
        return KeyType(request.key_type or KeyType.EC_P256.value), None
    try:
        public_key: PublicKey = load_csr(request.csr).public_key()  # type: ignore[assignment]
    except CsrError as exc:
        raise Invalid.field(["csr"], str(exc)) from None
    resolved = key_type_of(public_key)
    if request.key_type is not None and request.key_type != resolved.value:
        raise Invalid.field(
            ["key_type"], f"the CSR holds a {resolved.value} key, not {request.key_type}"
        )
    return resolved, public_key


def prepare(request: IssueRequest, limits: Limits) -> IssueOrder:
    """Check names, key choice and validity; refuse naming the field at fault."""
    cn, dns, ips = _names(request)
    most = limits.max_validity_days
    days = request.validity_days
    if days is None:
        days = min(limits.default_validity_days, most)
    if days > most:
        raise Invalid.field(["validity_days"], f"must be between 1 and {most}")
    key_type, public_key = _key(request)
    return IssueOrder(
        cn,
        tuple(dict.fromkeys(dns)),
        tuple(dict.fromkeys(ips)),
        key_type,
        public_key,
        days,
        request.is_active,
    )


def makes_slow_key(order: IssueOrder, keys: KeyPool) -> bool:
    """Whether signing this order must make an RSA key now (tens of milliseconds or more)."""
    return (
        order.csr_public_key is None
        and order.key_type.value.startswith("rsa")
        and keys.available(order.key_type) == 0
    )


def sign(
    order: IssueOrder, ca: IssuingCa, public_base_url: str, keys: KeyPool | None = None
) -> Issued:
    """Generate the key if needed and sign the leaf (the CPU-heavy part of issuance).

    With a key pool, a pre-generated key of the type is used when one is ready."""
    private_pem: bytes | None = None
    if order.csr_public_key is not None:
        public_key = order.csr_public_key
    else:
        private_key = (
            keys.take(order.key_type) if keys is not None else generate_private_key(order.key_type)
        )
        public_key = private_key.public_key()
        private_pem = private_key_to_pem(private_key)
    now = utcnow().replace(microsecond=0)
    serial = new_serial()
    not_after = min(now + timedelta(days=order.validity_days), ca.certificate.not_valid_after_utc)
    cert = build_leaf(
        LeafRequest(
            public_key=public_key,
            common_name=order.common_name,
            dns_names=order.dns_names,
            ip_addresses=order.ip_addresses,
            not_before=now - BACKDATE,
            not_after=not_after,
            serial_number=serial,
            crl_url=f"{public_base_url}{ca.crl_path}",
            ocsp_url=f"{public_base_url}/api/ocsp",
            ca_issuers_url=f"{public_base_url}{ca.issuer_path}",
        ),
        ca.issuer,
    )
    return Issued(uuid.uuid4(), ca.id, cert, format(serial, "x"), order.key_type, private_pem)
