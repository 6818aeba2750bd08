"""The CA's name policy: what no account may have, whatever it has proved. Pure, no I/O.

`NAME_POLICY_DENY` and `NAME_POLICY_ALLOW` hold DNS suffixes and IP networks; a suffix
matches the name itself and every name under it, on label boundaries. Deny wins over
allow. A wildcard directly under a public suffix (`*.co.uk`, `*.github.io`) is always
refused: the Public Suffix List comes with the `publicsuffixlist` package, read from the
file it ships (never fetched at run time).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from publicsuffixlist import PublicSuffixList

from pki import names

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

DENIED = "denied by policy"
PUBLIC_SUFFIX_WILDCARD = DENIED  # the contract has two messages; docs/api.md says why


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    # Parsing the list takes tens of milliseconds: once per process, on first use.
    return PublicSuffixList()


def is_public_suffix(name: str) -> bool:
    """Whether a DNS name (A-labels) is a public suffix, ICANN or private section
    (`co.uk`, `github.io`); an unknown top-level label counts as one."""
    return bool(_public_suffixes().is_public(name))


def unmapped(address: Address) -> Address:
    """An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) as the IPv4 address it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated IP networks (or single addresses); ValueError naming a bad entry."""
    networks: list[Network] = []
    for entry in _entries(text):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP network") from None
    return tuple(networks)


def in_networks(address: Address, networks: Iterable[Network]) -> bool:
    """Whether the address (IPv4-mapped IPv6 taken as IPv4) lies in any of the networks."""
    plain = unmapped(address)
    return any(plain.version == net.version and plain in net for net in networks)


def _entries(text: str) -> list[str]:
    """A list setting's entries: comma-separated, blanks around each comma allowed (the
    list's syntax, not the names': each entry is then parsed as strictly as any name)."""
    return [entry.strip(" ") for entry in text.split(",") if entry.strip(" ")]


def _suffix_of(entry: str) -> str:
    """`*.example.com` and `.example.com` are spellings of the suffix `example.com`."""
    for spelling in ("*.", "."):
        if entry.startswith(spelling):
            return entry[len(spelling) :]
    return entry


def suffix_matches(name: str, suffix: str) -> bool:
    """Whether `suffix` is the name itself or a parent of it, on label boundaries
    (`example.com` matches `a.example.com`, not `badexample.com`)."""
    return name == suffix or name.endswith("." + suffix)


@dataclass(frozen=True)
class Rules:
    """One list (allow or deny): DNS suffixes and IP networks."""

    suffixes: tuple[str, ...]
    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, text: str) -> Rules:
        """From the setting's text; ValueError naming a bad entry."""
        suffixes: list[str] = []
        networks: list[Network] = []
        for entry in _entries(text):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            try:
                suffixes.append(names.parse_dns_suffix(_suffix_of(entry)))
            except names.InvalidName as exc:
                raise ValueError(
                    f"{entry!r} is neither a DNS suffix nor an IP network: {exc}"
                ) from None
        return cls(tuple(suffixes), tuple(networks))

    @property
    def empty(self) -> bool:
        """Whether the list holds nothing."""
        return not self.suffixes and not self.networks

    def covers_ip(self, address: Address) -> bool:
        """Whether the address is in one of the networks."""
        return in_networks(address, self.networks)

    def covers_all_of(self, name: str) -> bool:
        """Whether every name the DNS name (maybe a wildcard) stands for is matched."""
        base = name.removeprefix("*.")
        return any(suffix_matches(base, suffix) for suffix in self.suffixes)

    def touches(self, name: str) -> bool:
        """Whether any name the DNS name (maybe a wildcard) stands for is matched: for
        `*.example.com`, a suffix `a.example.com` counts (the wildcard would cover it)."""
        if self.covers_all_of(name):
            return True
        if not name.startswith("*."):
            return False
        base = name[2:]
        return any(
            suffix.endswith("." + base) and "." not in suffix[: -len(base) - 1]
            for suffix in self.suffixes
        )


@dataclass(frozen=True)
class NamePolicy:
    """The operator's allow and deny lists."""

    allow: Rules
    deny: Rules

    @classmethod
    def parse(cls, allow: str, deny: str) -> NamePolicy:
        """From NAME_POLICY_ALLOW and NAME_POLICY_DENY; ValueError naming a bad entry."""
        return cls(Rules.parse(allow), Rules.parse(deny))

    def refusal_dns(self, name: str) -> str | None:
        """Why a DNS name (normalized A-labels, maybe `*.`) is refused, or None."""
        if name.startswith("*.") and is_public_suffix(name[2:]):
            return PUBLIC_SUFFIX_WILDCARD
        if self.deny.touches(name):
            return DENIED
        if not self.allow.empty and not self.allow.covers_all_of(name):
            return DENIED
        return None

    def refusal_ip(self, address: Address) -> str | None:
        """Why an IP address is refused, or None."""
        if self.deny.covers_ip(address):
            return DENIED
        if not self.allow.empty and not self.allow.covers_ip(address):
            return DENIED
        return None
