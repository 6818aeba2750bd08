"""The client address: the peer, or the entries trusted proxies added to X-Forwarded-For."""

from __future__ import annotations

from schema.clients import client_address, parse_networks

TRUSTED = parse_networks("10.0.0.0/8, 127.0.0.3, fd00::/8")


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert client_address("192.0.2.1", ["198.51.100.7"], TRUSTED) == "192.0.2.1"
    assert client_address("192.0.2.1", [], ()) == "192.0.2.1"


def test_a_trusted_proxy_names_the_client_in_its_own_entry_only() -> None:
    assert client_address("127.0.0.3", ["198.51.100.7"], TRUSTED) == "198.51.100.7"
    assert client_address("127.0.0.3", ["6.6.6.6, 198.51.100.7"], TRUSTED) == "198.51.100.7"
    assert client_address("127.0.0.3", ["6.6.6.6", "198.51.100.7"], TRUSTED) == "198.51.100.7"


def test_a_chain_of_trusted_proxies_is_walked_back() -> None:
    chain = ["6.6.6.6, 198.51.100.7, 10.1.2.3"]
    assert client_address("127.0.0.3", chain, TRUSTED) == "198.51.100.7"
    assert client_address("fd00::1", ["[2001:db8::5]:4711"], TRUSTED) == "2001:db8::5"
    assert client_address("::ffff:10.0.0.1", ["203.0.113.5:443"], TRUSTED) == "203.0.113.5"


def test_an_unreadable_entry_leaves_the_proxy_as_the_client() -> None:
    assert client_address("127.0.0.3", ["unknown"], TRUSTED) == "127.0.0.3"
    assert client_address("127.0.0.3", ["10.0.0.9, junk"], TRUSTED) == "127.0.0.3"
    assert client_address(None, ["198.51.100.7"], TRUSTED) == "unknown"
