"""Validation of requested names: DNS names per RFC 1035/5890, IPv4 and IPv6 addresses."""

from __future__ import annotations

import ipaddress
import re

import idna

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class InvalidName(ValueError):
    """A name the CA will not certify; the message says why and names it."""


def is_ip(value: str) -> bool:
    """Whether the text is an IPv4 or IPv6 address."""
    try:
        parse_ip(value)
    except InvalidName:
        return False
    return True


def parse_ip(value: str) -> IpAddress:
    """An IP address, or InvalidName. A zone id (`fe80::1%eth0`) means nothing off the host
    and cannot be encoded in a certificate, so it is refused."""
    text = value.strip()
    try:
        if "%" in text:
            raise ValueError("zone id")
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidName(f"{value!r} is not a valid IPv4 or IPv6 address") from None


def _to_ascii(label: str, name: str) -> str:
    if label.isascii():
        label = label.lower()
        if label.startswith("xn--"):  # an A-label must decode to a valid U-label
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError) as exc:
                raise InvalidName(f"{name!r}: {label!r} is not a valid A-label: {exc}") from None
        return label
    try:
        return idna.encode(label, uts46=True).decode()
    except idna.IDNAError as exc:
        raise InvalidName(f"{name!r} is not a valid internationalized name: {exc}") from None


def normalize_dns_name(name: str) -> str:
    """The lower-case A-label form of a DNS name, or InvalidName."""
    text = name.strip()
    text = text.removesuffix(".")
    if not text:
        raise InvalidName("empty DNS name")
    labels = text.split(".")
    wildcard = labels[0] == "*"
    if wildcard:
        labels = labels[1:]
        if len(labels) < 2:
            raise InvalidName(f"{name!r}: a wildcard must stand over at least two labels")
    if len(labels) < 2:
        raise InvalidName(f"{name!r} is not a fully qualified DNS name")
    ascii_labels = [_to_ascii(label, name) for label in labels]
    for label in ascii_labels:
        if "*" in label:
            raise InvalidName(f"{name!r}: '*' is only allowed as the whole leftmost label")
        if not _LABEL.match(label):
            raise InvalidName(
                f"{name!r}: label {label!r} must be 1-63 letters, digits or hyphens, "
                "not starting or ending with a hyphen"
            )
    if ascii_labels[-1].isdigit():
        raise InvalidName(f"{name!r}: the top-level label cannot be all digits")
    result = ".".join((["*"] if wildcard else []) + ascii_labels)
    if len(result) > 253:
        raise InvalidName(f"{name!r} is longer than 253 characters")
    return result
