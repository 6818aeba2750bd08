"""Real servers for the validation tests: a DNS server (dnslib), an HTTP challenge server and
a tls-alpn-01 server (stdlib ssl, certificates made with cryptography)."""

from __future__ import annotations

import datetime
import ipaddress
import socketserver
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID
from dnslib import AAAA, CAA, QTYPE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSServer

from core import validation


class Zone(BaseResolver):  # type: ignore[misc]
    """Answers what the test set: A/AAAA for any name under `.test` (127.0.0.1 unless set
    otherwise), and TXT and CAA records the test adds. Unknown names: NXDOMAIN."""

    def __init__(self) -> None:
        self.addresses: dict[str, list[str]] = {}
        self.txt: dict[str, list[str]] = {}
        self.caa: dict[str, list[tuple[int, str, str]]] = {}

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        known = qname.endswith(".test") and not qname.startswith("nx.")
        if qtype in ("A", "AAAA") and known:
            for address in self.addresses.get(qname, ["127.0.0.1"]):
                is_v6 = ":" in address
                if (qtype == "AAAA") == is_v6:
                    rdata = AAAA(address) if is_v6 else A(address)
                    reply.add_answer(RR(qname, getattr(QTYPE, qtype), rdata=rdata, ttl=1))
        elif qtype == "TXT":
            for value in self.txt.get(qname, []):
                reply.add_answer(RR(qname, QTYPE.TXT, rdata=TXT(value), ttl=1))
        elif qtype == "CAA":
            for flags, tag, value in self.caa.get(qname, []):
                reply.add_answer(RR(qname, QTYPE.CAA, rdata=CAA(flags, tag, value), ttl=1))
        if not known and qname not in self.txt and qname not in self.caa:
            reply.header.rcode = 3  # NXDOMAIN
        return reply


def start_dns() -> tuple[Zone, DNSServer, int]:
    """A UDP DNS server on 127.0.0.1 and a free port."""
    zone = Zone()
    server = DNSServer(zone, address="127.0.0.1", port=0)
    server.start_thread()
    return zone, server, int(server.server.server_address[1])


@dataclass
class Route:
    """What the challenge server answers on one path."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Called before answering (a hang blocks here); the request's Host header is passed.
    before: Callable[[str], None] | None = None
    stream_bytes: int = 0  # a large body, sent in chunks


class ChallengeServer:
    """An HTTP server on 127.0.0.1 (VALIDATION_HTTP_PORT in the tests) answering set routes."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hosts: list[str] = []
        routes, hosts = self.routes, self.hosts

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hosts.append(self.headers.get("host", ""))
                route = routes.get(self.path, Route(404, b"no such challenge"))
                if route.before is not None:
                    route.before(self.headers.get("host", ""))
                try:
                    self.send_response(route.status)
                    for name, value in route.headers.items():
                        self.send_header(name, value)
                    length = route.stream_bytes or len(route.body)
                    self.send_header("Content-Length", str(length))
                    self.end_headers()
                    if route.stream_bytes:
                        chunk = b"x" * 65536
                        for _ in range(route.stream_bytes // len(chunk)):
                            self.wfile.write(chunk)
                    else:
                        self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the validator stopped reading: that is the point

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def hang_until(
    released: threading.Event, arrived: threading.Event | None = None
) -> Callable[[str], None]:
    """A `before` hook that blocks the answer until `released` (at most a minute)."""

    def wait(_host: str) -> None:
        if arrived is not None:
            arrived.set()
        released.wait(60)

    return wait


def wait_for(condition: Callable[[], Any], seconds: float = 60) -> Any:
    """Poll until `condition()` is truthy; its value, or AssertionError after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@dataclass(frozen=True)
class AlpnAnswer:
    """How the tls-alpn-01 server answers one SNI name. The defaults are the right answer:
    ALPN acme-tls/1 and a self-signed certificate whose only subjectAltName is the
    identifier, with the critical acmeIdentifier extension for `key_auth`. Each other
    field is a fault."""

    identifier: str  # a DNS name or an IP address
    key_auth: str
    critical: bool = True
    extension: bool = True  # False: no acmeIdentifier extension at all
    extension_value: bytes | None = None  # the extension's DER value instead of the right one
    sans: tuple[str, ...] | None = None  # subjectAltName entries instead of the identifier
    san_der: bytes | None = None  # the subjectAltName extension's DER value, as it is
    alpn: tuple[str, ...] | None = (validation.TLS_ALPN_PROTOCOL,)  # None: no ALPN (plain TLS)
    hang: threading.Event | None = None  # the handshake stalls until this is set (60 s at most)


# A subjectAltName holding one x400Address ([3], an empty ORAddress): well-formed, and a kind
# of name the cryptography package refuses to parse.
X400_SAN = bytes.fromhex("3004a3023000")


def _general_name(text: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        return x509.DNSName(text)


def alpn_certificate(answer: AlpnAnswer) -> tuple[bytes, bytes]:
    """The PEM certificate and key the server shows for `answer`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    sans = answer.sans if answer.sans is not None else (answer.identifier,)
    san: x509.ExtensionType = x509.SubjectAlternativeName([_general_name(s) for s in sans])
    if answer.san_der is not None:
        san = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, answer.san_der)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
    )
    if answer.extension:
        value = answer.extension_value
        if value is None:
            value = validation.tls_alpn01_extension_value(answer.key_auth)
        oid = x509.ObjectIdentifier(validation.ACME_IDENTIFIER_OID)
        builder = builder.add_extension(
            x509.UnrecognizedExtension(oid, value), critical=answer.critical
        )
    cert = builder.sign(key, hashes.SHA256())
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


class _ReusingTCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True  # a test may restart a server on the port it had
    daemon_threads = True


class TlsAlpnServer:
    """A TLS server on 127.0.0.1 answering tls-alpn-01 for the names added to it, each by
    its SNI (an IP address's is its reverse-DNS name, RFC 8738). An unknown or missing SNI
    is refused with an unrecognized_name alert. Runs in threads; `stop()` ends it."""

    def __init__(self, port: int = 0) -> None:
        self.answers: dict[str, tuple[AlpnAnswer, ssl.SSLContext]] = {}
        self.server_names: list[str | None] = []  # the SNI of every handshake, in order
        self.base = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.base.sni_callback = self._pick
        base = self.base

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(30)
                try:
                    with base.wrap_socket(self.request, server_side=True) as tls:
                        while tls.recv(4096):  # until the client closes
                            pass
                except (OSError, ssl.SSLError):
                    pass  # a refused handshake or a client that went away

        self.server = _ReusingTCPServer(("127.0.0.1", port), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, identifier: str, key_auth: str, **faults: Any) -> AlpnAnswer:
        """Answer `identifier`'s SNI with `AlpnAnswer(identifier, key_auth, **faults)`,
        replacing what was answered for it before."""
        answer = AlpnAnswer(identifier, key_auth, **faults)
        cert_pem, key_pem = alpn_certificate(answer)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as tmp:
            cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            cert_path.write_bytes(cert_pem)
            key_path.write_bytes(key_pem)
            context.load_cert_chain(cert_path, key_path)
        if answer.alpn is not None:
            context.set_alpn_protocols(list(answer.alpn))
        self.answers[validation.tls_alpn01_server_name(identifier).lower()] = (answer, context)
        return answer

    def remove(self, identifier: str) -> None:
        self.answers.pop(validation.tls_alpn01_server_name(identifier).lower(), None)

    def _pick(
        self, tls: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext
    ) -> int | None:
        self.server_names.append(server_name)
        found = self.answers.get((server_name or "").lower())
        if found is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        answer, context = found
        if answer.hang is not None:
            answer.hang.wait(60)
        tls.context = context
        return None

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_tls_alpn(
    name_or_ip: str, key_auth: str, port: int = 0, **faults: Any
) -> tuple[TlsAlpnServer, int]:
    """A tls-alpn-01 server on 127.0.0.1 (a free port unless given) answering `name_or_ip`;
    `server.add(...)` answers more names. Faults: see `AlpnAnswer`."""
    server = TlsAlpnServer(port)
    server.add(name_or_ip, key_auth, **faults)
    return server, server.port
