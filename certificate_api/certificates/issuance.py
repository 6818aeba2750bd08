"""From a validated request to a signed certificate: names, keys, CSR, X.509. CPU only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509

from certificate_api.authority.service import IssuingCa
from certificate_api.errors import Unprocessable
from certificate_api.pki import names
from certificate_api.pki.issue import CsrError, LeafRequest, build_leaf, load_csr, new_serial
from certificate_api.pki.keypool import KeyPool
from certificate_api.pki.keys import (
    KeyType,
    PublicKey,
    generate_private_key,
    key_type_of,
    private_key_to_pem,
)
from schema.base import utcnow

# Clients' clocks drift: a certificate valid from a few minutes ago works everywhere at once.
BACKDATE = timedelta(minutes=5)


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


def _dns(value: str, loc: list[str | int]) -> str:
    try:
        return names.normalize_dns_name(value)
    except names.InvalidName as exc:
        raise Unprocessable.field(loc, str(exc)) from None


def prepare(
    common_name: str,
    dns_names: list[str],
    ip_addresses: list[str],
    key_type: str | None,
    validity_days: int | None,
    csr: str | None,
    is_active: bool,
    default_validity: int,
    max_validity: int,
) -> IssueOrder:
    """Validate names, key choice and validity; raise a 422 naming the field."""
    dns: list[str] = []
    ips: list[names.IpAddress] = []
    if names.is_ip(common_name.strip()):
        ips.append(names.parse_ip(common_name))
        cn = str(ips[0])
    else:
        cn = _dns(common_name, ["body", "common_name"])
        dns.append(cn)
    dns += [_dns(name, ["body", "dns_names", i]) for i, name in enumerate(dns_names)]
    for i, value in enumerate(ip_addresses):
        try:
            ips.append(names.parse_ip(value))
        except names.InvalidName as exc:
            raise Unprocessable.field(["body", "ip_addresses", i], str(exc)) from None
    days = validity_days if validity_days is not None else min(default_validity, max_validity)
    if days > max_validity:
        raise Unprocessable.field(
            ["body", "validity_days"], f"must be between 1 and {max_validity}"
        )
    public_key: PublicKey | None = None
    if csr is not None:
        try:
            public_key = load_csr(csr).public_key()  # type: ignore[assignment]
        except CsrError as exc:
            raise Unprocessable.field(["body", "csr"], str(exc)) from None
        assert public_key is not None
        resolved = key_type_of(public_key)
        if key_type is not None and key_type != resolved.value:
            raise Unprocessable.field(
                ["body", "key_type"], f"the CSR holds a {resolved.value} key, not {key_type}"
            )
    else:
        resolved = KeyType(key_type or KeyType.EC_P256.value)
    return IssueOrder(
        cn,
        tuple(dict.fromkeys(dns)),
        tuple(dict.fromkeys(ips)),
        resolved,
        public_key,
        days,
        is_active,
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
