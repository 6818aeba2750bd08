"""Challenge checks that go out to the network (http-01, dns-01, tls-alpn-01, CAA), and the
runner that settles the validations customers asked for.

The checks are reusable by ACME: `Checker.http01(name, token, key_authorization)`,
`Checker.dns01(name, record_value)`, `Checker.tls_alpn01(name, key_authorization)` and
`Checker.caa(name, wildcard)` each raise `ValidationFailed` with a reason a customer can act
on; `Checker.check` runs one challenge and CAA and always comes back with an outcome (an
exception no check expects is logged, and its error says an unexpected failure happened).
They never connect to an address in `VALIDATION_DENY_NETWORKS`: names are resolved here
(through `VALIDATION_DNS_SERVERS`), the connection goes to the address checked, with the name
in the Host header (or as TLS SNI), and every redirect hop is judged the same way, so neither
DNS rebinding nor a redirect reaches a denied address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver
import httpx

from core import validation
from core.policy import Address, Network, in_networks, parse_networks, unmapped
from pki import names
from schema.settings import CommonSettings
from worker import tls_alpn

log = logging.getLogger(__name__)
MAX_REDIRECTS = 10
MAX_BODY_BYTES = 64 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Loopback, "this network", link-local (169.254.169.254 is the usual cloud metadata address;
# fd00:ec2::254 is AWS's IPv6 one, 100.100.100.200 Alibaba's) and the unspecified address.
DEFAULT_DENY_NETWORKS = (
    "127.0.0.0/8, ::1/128, 0.0.0.0/8, ::/128, 169.254.0.0/16, fe80::/10, "
    "fd00:ec2::254/128, 100.100.100.200/32"
)


class ValidationFailed(Exception):
    """A check did not pass; the message is the authorization's `error`."""


@dataclass(frozen=True)
class ValidationConfig:
    """What the checks need from settings."""

    http_port: int
    tls_port: int
    dns_servers: tuple[tuple[str, int], ...]
    deny: tuple[Network, ...]
    caa_identities: tuple[str, ...]
    timeout: float

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> ValidationConfig:
        """Parse the VALIDATION_* and CAA_IDENTITIES settings; ValueError on a bad entry."""
        deny = settings.validation_deny_networks
        return cls(
            http_port=settings.validation_http_port,
            tls_port=settings.validation_tls_port,
            dns_servers=tuple(
                _server(s) for s in settings.validation_dns_servers.split(",") if s.strip()
            ),
            deny=parse_networks(DEFAULT_DENY_NETWORKS if deny is None else deny),
            caa_identities=tuple(
                names.parse_dns_suffix(i.strip(" "))
                for i in settings.caa_identities.split(",")
                if i.strip(" ")
            ),
            timeout=settings.validation_timeout_seconds,
        )


def _server(text: str) -> tuple[str, int]:
    """`host:port` (`[v6]:port`; the port defaults to 53) of a DNS server given by address."""
    text = text.strip()
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest.removeprefix(":") or 53)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    ipaddress.ip_address(host)  # ValueError for a name: a resolver is given by address
    return host, port


class Checker:
    """The network checks, with their limits (redirects, size, deny networks)."""

    def __init__(self, config: ValidationConfig) -> None:
        self.config = config
        if config.dns_servers:
            self.resolver = dns.asyncresolver.Resolver(configure=False)
            self.resolver.nameservers = [
                dns.nameserver.Do53Nameserver(host, port) for host, port in config.dns_servers
            ]
        else:
            self.resolver = dns.asyncresolver.Resolver()
        self.resolver.lifetime = config.timeout
        # Certificates are not verified on an https hop (RFC 8555 section 8.3: the proof
        # is the body), and redirects are followed here, one checked hop at a time.
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            verify=False,  # noqa: S501
            timeout=config.timeout,
            trust_env=False,
            # identity: a compressed body could expand far past the 64 KiB read limit
            headers={"user-agent": "tessera-validation/1", "accept-encoding": "identity"},
        )

    async def close(self) -> None:
        """Release the HTTP client."""
        await self.client.aclose()

    async def addresses(self, host: str) -> list[Address]:
        """The IPv4 and IPv6 addresses of a name, or the address a literal is."""
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        found: list[Address] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self.resolver.resolve(host, rdtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException as exc:
                raise ValidationFailed(f"DNS lookup of {host} failed: {_dns_error(exc)}") from None
            found += [ipaddress.ip_address(r.address) for r in answer]
        if not found:
            raise ValidationFailed(f"{host} has no A or AAAA record")
        return found

    def allowed(self, host: str, found: list[Address]) -> list[Address]:
        """The addresses the validator may connect to; fails when there is none."""
        usable = [unmapped(a) for a in found if not in_networks(a, self.config.deny)]
        if not usable:
            raise ValidationFailed(
                f"{host} resolves to {found[0]}, an address the validator does not connect "
                "to (VALIDATION_DENY_NETWORKS)"
            )
        return usable

    async def http01(self, name: str, token: str, key_auth: str) -> None:
        """Fetch the key authorization over HTTP (RFC 8555 section 8.3)."""
        url = httpx.URL(validation.http01_url(name, self.config.http_port, token))
        seen: set[str] = set()
        for _hop in range(MAX_REDIRECTS + 1):
            if str(url) in seen:
                raise ValidationFailed(f"redirect loop at {url}")
            seen.add(str(url))
            location = await self._fetch(url, key_auth)
            if location is None:
                return
            url = url.join(location)
            port = url.port or (443 if url.scheme == "https" else 80)
            if port not in (self.config.http_port, self.config.tls_port):
                # As public CAs do: a redirect cannot aim the validator at any other service.
                raise ValidationFailed(
                    f"redirect to port {port}: only {self.config.http_port} (http) and "
                    f"{self.config.tls_port} (https) are followed"
                )
        raise ValidationFailed(f"more than {MAX_REDIRECTS} redirects")

    async def _fetch(self, url: httpx.URL, key_auth: str) -> str | None:
        """One hop: the next Location for a redirect, None when the body is right."""
        if url.scheme not in ("http", "https"):
            raise ValidationFailed(f"redirect to {url.scheme}: only http and https are followed")
        host = url.host
        address = self.allowed(host, await self.addresses(host))[0]
        target = url.copy_with(host=str(address))
        extensions = {"sni_hostname": host} if url.scheme == "https" else {}
        try:
            async with self.client.stream(
                "GET", target, headers={"host": url.netloc.decode()}, extensions=extensions
            ) as response:
                if response.status_code in REDIRECTS:
                    location = response.headers.get("location")
                    if not location:
                        raise ValidationFailed(f"{url} redirected without a Location")
                    return str(location)
                if response.status_code != 200:
                    raise ValidationFailed(f"{url} answered HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise ValidationFailed(f"{url} sent more than {MAX_BODY_BYTES} bytes")
        except httpx.HTTPError as exc:
            raise ValidationFailed(f"{url} ({address}): {_http_error(exc)}") from None
        if not validation.http01_body_matches(bytes(body), key_auth):
            raise ValidationFailed(f"{url} did not answer with the key authorization")
        return None

    async def tls_alpn01(self, name: str, key_auth: str) -> None:
        """Handshake with ALPN `acme-tls/1` and judge the certificate (RFC 8737 section 3;
        RFC 8738 section 6 for an IP address, whose SNI is its reverse-DNS name)."""
        address = self.allowed(name, await self.addresses(name))[0]
        port = self.config.tls_port
        where = f"{name} ({f'[{address}]' if address.version == 6 else address}:{port})"
        der = await self._alpn_certificate(where, address, validation.tls_alpn01_server_name(name))
        refusal = tls_alpn.refusal(where, der, name, key_auth)
        if refusal is not None:
            raise ValidationFailed(refusal)

    async def _alpn_certificate(self, where: str, address: Address, server_name: str) -> bytes:
        """The DER certificate of a handshake that negotiated acme-tls/1."""
        # Not verified: the proof is the acmeIdentifier extension of a self-signed certificate.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8737 section 4
        context.set_alpn_protocols([validation.TLS_ALPN_PROTOCOL])  # and nothing else
        try:
            async with asyncio.timeout(self.config.timeout):
                _reader, writer = await asyncio.open_connection(
                    str(address), self.config.tls_port, ssl=context, server_hostname=server_name
                )
        except TimeoutError:
            raise ValidationFailed(
                f"{where}: no TLS handshake within {self.config.timeout:g} s"
            ) from None
        except ssl.SSLError as exc:
            raise ValidationFailed(
                f"{where}: {tls_alpn.handshake_error(exc, server_name)}"
            ) from None
        except ConnectionRefusedError:
            raise ValidationFailed(f"{where}: could not connect (connection refused)") from None
        except OSError as exc:
            raise ValidationFailed(f"{where}: could not connect ({_os_error(exc)})") from None
        try:
            tls = writer.get_extra_info("ssl_object")
            protocol = tls.selected_alpn_protocol()
            der = tls.getpeercert(binary_form=True)
        finally:
            writer.transport.abort()  # nothing is sent: the handshake was the whole check
        if protocol != validation.TLS_ALPN_PROTOCOL:
            raise ValidationFailed(
                f"{where}: the TLS server did not negotiate ALPN {validation.TLS_ALPN_PROTOCOL} "
                f"({protocol or 'no ALPN'}); it must answer a handshake offering only "
                f"{validation.TLS_ALPN_PROTOCOL} with the challenge certificate"
            )
        if not der:
            raise ValidationFailed(f"{where}: the TLS server sent no certificate")
        return bytes(der)

    async def dns01(self, name: str, record_value: str) -> None:
        """Find the TXT record (RFC 8555 section 8.4)."""
        record = validation.dns01_record_name(name)
        try:
            answer = await self.resolver.resolve(record, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            raise ValidationFailed(f"no TXT record at {record}") from None
        except dns.exception.DNSException as exc:
            raise ValidationFailed(f"DNS lookup of {record} failed: {_dns_error(exc)}") from None
        values = [b"".join(r.strings).decode(errors="replace") for r in answer]
        if record_value not in values:
            raise ValidationFailed(
                f"no TXT record at {record} holds the expected value ({len(values)} found)"
            )

    async def caa(self, name: str, wildcard: bool) -> None:
        """RFC 8659: the closest CAA record set up the tree must name this CA, if one exists;
        `wildcard` (an authorization that covers wildcards) also asks `issuewild`. Nothing to
        check when CAA_IDENTITIES is empty."""
        if not self.config.caa_identities:
            return
        labels = name.split(".")
        for start in range(len(labels)):
            domain = ".".join(labels[start:])
            try:
                answer = await self.resolver.resolve(domain, "CAA")
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException as exc:
                raise ValidationFailed(
                    f"CAA lookup of {domain} failed: {_dns_error(exc)}"
                ) from None
            self._judge_caa(domain, list(answer), wildcard)
            return

    def _judge_caa(self, domain: str, records: list[object], wildcard: bool) -> None:
        """The `issue` set must permit the name (no `issue` record: no restriction on it); for
        an authorization covering wildcards, so must the `issuewild` set, or `issue` again
        where there is no `issuewild` record (RFC 8659 sections 4.2 and 4.3)."""
        by_tag: dict[str, list[str]] = {}
        for record in records:
            tag = record.tag.decode().lower()  # type: ignore[attr-defined]
            if record.flags & 128 and tag not in ("issue", "issuewild", "iodef"):  # type: ignore[attr-defined]
                raise ValidationFailed(f"CAA at {domain} has a critical unknown tag {tag!r}")
            value = record.value.decode(errors="replace")  # type: ignore[attr-defined]
            by_tag.setdefault(tag, []).append(value)
        if not self._permits(by_tag.get("issue")):
            raise ValidationFailed(f"CAA records at {domain} do not authorize this CA")
        if wildcard and not self._permits(by_tag.get("issuewild", by_tag.get("issue"))):
            raise ValidationFailed(
                f"CAA records at {domain} do not authorize this CA for wildcards (issuewild), "
                "which an authorization with include_subdomains covers"
            )

    def _permits(self, values: list[str] | None) -> bool:
        """Whether a property set names this CA; an absent set (None) restricts nothing."""
        if values is None:
            return True
        issuers = {value.split(";", 1)[0].strip().lower() for value in values}
        return bool(issuers & set(self.config.caa_identities))

    async def check(
        self, name: str, kind: str, token: str, key_auth: str, include_subdomains: bool
    ) -> str | None:
        """One challenge and CAA, within the time limit: None when passed, else why not."""
        if not names.is_valid_name(name):
            # Stored before the name rules were strict (or by a process older than them):
            # never looked up, never connected to.
            return f"name no longer accepted: {name!r} is not a valid name"
        try:
            async with asyncio.timeout(self.config.timeout):
                if kind == "http-01":
                    await self.http01(name, token, key_auth)
                elif kind == "dns-01":
                    await self.dns01(name, validation.dns01_record_value(key_auth))
                elif kind == "tls-alpn-01":
                    await self.tls_alpn01(name, key_auth)
                else:
                    raise ValidationFailed(f"unknown challenge type {kind!r}")
                if not _is_ip(name):
                    await self.caa(name, include_subdomains)
        except TimeoutError:
            return f"no answer within {self.config.timeout:g} s"
        except ValidationFailed as exc:
            return str(exc)
        except Exception as exc:  # whatever the answer, the validation ends (invalid)
            # The traceback names no secret: a key authorization is only ever an argument.
            log.exception("validation check failed unexpectedly", extra={"type": kind})
            return unexpected_failure(exc)
        return None


def unexpected_failure(exc: BaseException) -> str:
    """The error of a check that broke instead of answering: the CA's failure, not the
    customer's (ACME: serverInternal, core/acme/challenges.py tells it by these words)."""
    return f"an unexpected failure happened in the validator ({type(exc).__name__})"


def _os_error(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _dns_error(exc: dns.exception.DNSException) -> str:
    if isinstance(exc, dns.exception.Timeout | dns.resolver.LifetimeTimeout):
        return "timed out"
    if isinstance(exc, dns.resolver.NoNameservers):
        return "no name server answered (SERVFAIL or refused)"
    return type(exc).__name__


def _http_error(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return f"HTTP error ({type(exc).__name__})"
