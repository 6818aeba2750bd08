"""Real servers for the validation tests: a DNS server (dnslib) and an HTTP challenge server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dnslib import AAAA, CAA, QTYPE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSServer


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
