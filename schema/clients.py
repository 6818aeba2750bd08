"""Who the client is: the peer address, or what a trusted reverse proxy says it saw."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(value: str | Iterable[str]) -> tuple[Network, ...]:
    """Networks from `10.0.0.0/8, 192.0.2.7` (a bare address is a network of one)."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def _address(text: str) -> str | None:
    """The canonical form of an address as proxies write it (`[v6]:port`, `v4:port` too)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return any(parsed in network for network in networks)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]
) -> str:
    """The address a request came from.

    The peer's, unless the peer is a trusted proxy: then the last `X-Forwarded-For` entry
    (the one that proxy added), and so on while that too is a trusted proxy. Entries further
    left were written by the client or by proxies we do not know, so they are never
    believed: otherwise anyone could choose the address they are throttled under.
    """
    address = _address(peer or "") or "unknown"
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    while hops and address != "unknown" and _trusted(address, trusted):
        previous = _address(hops.pop())
        if previous is None:
            break  # a trusted proxy wrote something unreadable: the proxy is all we know
        address = previous
    return address
