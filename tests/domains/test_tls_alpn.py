"""tls-alpn-01 (RFC 8737, RFC 8738 for IP addresses) against a real TLS server on 127.0.0.1:
the right certificate passes, and each way of getting it wrong fails with a reason."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from core import validation
from tests.conftest import free_port
from tests.domains.conftest import CA_IDENTITY
from tests.domains.servers import TlsAlpnServer, Zone, start_tls_alpn
from worker.validation import Checker, ValidationConfig, ValidationFailed

KEY_AUTH = "token-123.thumbprint-456"


def unique(label: str = "alpn") -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}.test"


@pytest.fixture(scope="module")
def tls_server() -> Iterator[TlsAlpnServer]:
    server, _port = start_tls_alpn(unique("first"), KEY_AUTH)
    yield server
    server.stop()


@pytest.fixture
def configure(settings: Any, tls_server: TlsAlpnServer) -> Callable[..., ValidationConfig]:
    """The worker's validation settings (loopback allowed unless overridden) aimed at
    the test's TLS server."""

    def make(**overrides: Any) -> ValidationConfig:
        values = {"validation_tls_port": tls_server.port, **overrides}
        return ValidationConfig.from_settings(settings.model_copy(update=values))

    return make


def run(config: ValidationConfig, step: Callable[[Checker], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        checker = Checker(config)
        try:
            return await step(checker)
        finally:
            await checker.close()

    return asyncio.run(go())


def fails(config: ValidationConfig, name: str, key_auth: str = KEY_AUTH) -> str:
    """tls_alpn01 must raise ValidationFailed; its message."""
    with pytest.raises(ValidationFailed) as raised:
        run(config, lambda checker: checker.tls_alpn01(name, key_auth))
    return str(raised.value)


def check(config: ValidationConfig, name: str, key_auth: str = KEY_AUTH) -> str | None:
    """What the worker runs for a tls-alpn-01 validation (CAA included)."""
    return run(  # type: ignore[no-any-return]
        config, lambda checker: checker.check(name, "tls-alpn-01", "token-123", key_auth, False)
    )


def test_the_right_certificate_passes_with_the_name_as_sni(
    configure: Callable[..., ValidationConfig], tls_server: TlsAlpnServer
) -> None:
    name = unique()
    tls_server.add(name, KEY_AUTH)
    assert check(configure(), name) is None
    assert tls_server.server_names[-1] == name
    tls_server.add(name, "another-token.thumbprint-456")  # a sound check can fail
    assert "does not hold the SHA-256" in (check(configure(), name) or "")


def test_dns_names_in_the_certificate_are_compared_without_case(
    configure: Callable[..., ValidationConfig], tls_server: TlsAlpnServer
) -> None:
    name = unique()
    tls_server.add(name, KEY_AUTH, sans=(name.upper(),))
    assert check(configure(), name) is None


def test_wrong_digest_is_refused(
    configure: Callable[..., ValidationConfig], tls_server: TlsAlpnServer
) -> None:
    name = unique()
    tls_server.add(name, "token-123.someone-else")
    error = fails(configure(), name)
    assert error.startswith(f"{name} (127.0.0.1:{tls_server.port}): ")
    assert "does not hold the SHA-256 of this challenge's key authorization" in error


def test_a_bare_digest_without_its_octet_string_is_refused(
    configure: Callable[..., ValidationConfig], tls_server: TlsAlpnServer
) -> None:
    name = unique()
    bare = hashlib.sha256(KEY_AUTH.encode()).digest()
    tls_server.add(name, KEY_AUTH, extension_value=bare)
    assert "holds the bare SHA-256 digest" in fails(configure(), name)


def test_an_extension_not_marked_critical_is_refused(
    configure: Callable[..., ValidationConfig], tls_server: TlsAlpnServer
) -> None:
    name = unique()
    tls_server.add(name, KEY_AUTH, critical=False)
    assert "the acmeIdentifier extension is not marked critical" in fails(configure(), name)


def test_a_certificate_without_the_extension_is_refused(
    configure: Callable[..., ValidationConfig], tls_server: TlsAlpnServer
) -> None:
    name = unique()
    tls_server.add(name, KEY_AUTH, extension=False)
    error = fails(configure(), name)
    assert f"no acmeIdentifier extension ({validation.ACME_IDENTIFIER_OID})" in error


@pytest.mark.parametrize("sans", ["other", "extra", "ip", "none"])
def test_a_subject_alt_name_other_than_the_name_alone_is_refused(
    configure: Callable[..., ValidationConfig], tls_server: TlsAlpnServer, sans: str
) -> None:
    name = unique()
    entries = {
        "other": (unique("other"),),
        "extra": (name, unique("extra")),
        "ip": ("127.0.0.1",),
        "none": (),
    }[sans]
    tls_server.add(name, KEY_AUTH, sans=entries)
    error = fails(configure(), name)
    assert f"subjectAltName must be exactly dNSName {name} and nothing else" in error
    if sans == "ip":
        assert "(found iPAddress 127.0.0.1)" in error


def test_plain_tls_without_acme_tls_1_is_refused(
    configure: Callable[..., ValidationConfig], tls_server: TlsAlpnServer
) -> None:
    name = unique()
    tls_server.add(name, KEY_AUTH, alpn=None)
    assert "did not negotiate ALPN acme-tls/1 (no ALPN)" in fails(configure(), name)
    tls_server.add(name, KEY_AUTH, alpn=("h2", "http/1.1"))
    assert "did not negotiate ALPN acme-tls/1" in fails(configure(), name)


def test_only_acme_tls_1_is_offered(
    configure: Callable[..., ValidationConfig], tls_server: TlsAlpnServer
) -> None:
    # OpenSSL picks the first of the server's protocols the client offers: a validator
    # offering http/1.1 as well would get it here, and fail.
    name = unique()
    tls_server.add(name, KEY_AUTH, alpn=("http/1.1", validation.TLS_ALPN_PROTOCOL))
    assert check(configure(), name) is None


def test_a_name_the_server_does_not_know_is_refused(
    configure: Callable[..., ValidationConfig],
) -> None:
    name = unique("unknown")
    error = fails(configure(), name)
    assert f"the TLS server does not know the name {name} (unrecognized_name alert)" in error


def test_nothing_listening_is_refused(configure: Callable[..., ValidationConfig]) -> None:
    port = free_port()
    error = fails(configure(validation_tls_port=port), unique())
    assert f"(127.0.0.1:{port}): could not connect (connection refused)" in error


def test_a_handshake_that_never_ends_is_refused(
    configure: Callable[..., ValidationConfig], tls_server: TlsAlpnServer
) -> None:
    name = unique()
    released = threading.Event()
    tls_server.add(name, KEY_AUTH, hang=released)
    try:
        config = configure(validation_timeout_seconds=1)
        assert "no TLS handshake within 1 s" in fails(config, name)
        assert check(config, name) == "no answer within 1 s"
    finally:
        released.set()


@pytest.mark.parametrize("identifier", ["name", "127.0.0.1"])
def test_default_deny_networks_refuse_loopback_before_any_handshake(
    configure: Callable[..., ValidationConfig], tls_server: TlsAlpnServer, identifier: str
) -> None:
    name = unique() if identifier == "name" else identifier
    tls_server.add(name, KEY_AUTH)
    assert check(configure(), name) is None  # reachable when loopback is allowed
    seen = len(tls_server.server_names)
    error = check(configure(validation_deny_networks=None), name)
    assert error == (
        f"{name} resolves to 127.0.0.1, an address the validator does not connect to "
        "(VALIDATION_DENY_NETWORKS)"
    )
    assert len(tls_server.server_names) == seen  # never connected


def test_a_name_resolving_to_a_denied_address_is_refused(
    configure: Callable[..., ValidationConfig], zone: Zone
) -> None:
    name = unique("meta")
    zone.addresses[name] = ["169.254.169.254"]
    error = fails(configure(validation_deny_networks="169.254.0.0/16"), name)
    assert "VALIDATION_DENY_NETWORKS" in error


def test_an_ip_address_is_proved_with_its_reverse_name_and_an_ip_san(
    configure: Callable[..., ValidationConfig], tls_server: TlsAlpnServer
) -> None:
    tls_server.add("127.0.0.1", KEY_AUTH)
    assert check(configure(), "127.0.0.1") is None
    assert tls_server.server_names[-1] == "1.0.0.127.in-addr.arpa"
    # The reverse name as a dNSName is not the identifier
    tls_server.add("127.0.0.1", KEY_AUTH, sans=("1.0.0.127.in-addr.arpa",))
    error = fails(configure(), "127.0.0.1")
    assert "must be exactly iPAddress 127.0.0.1 and nothing else" in error
    assert "(found dNSName 1.0.0.127.in-addr.arpa)" in error


def test_caa_is_checked_as_for_the_other_challenges(
    configure: Callable[..., ValidationConfig], tls_server: TlsAlpnServer, zone: Zone
) -> None:
    name = unique("caa")
    tls_server.add(name, KEY_AUTH)
    zone.caa[name] = [(0, "issue", "other-ca.example")]
    assert check(configure(), name) == f"CAA records at {name} do not authorize this CA"
    zone.caa[name] = [(0, "issue", CA_IDENTITY)]
    assert check(configure(), name) is None


def test_the_helpers_are_the_rfc_values() -> None:
    digest = hashlib.sha256(b"a.b").digest()
    assert validation.tls_alpn01_extension_value("a.b") == bytes([0x04, 0x20]) + digest
    assert validation.tls_alpn01_server_name("192.0.2.1") == "1.2.0.192.in-addr.arpa"
    assert validation.tls_alpn01_server_name("2001:db8::1") == (
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    )
    assert validation.tls_alpn01_server_name("example.com") == "example.com"
