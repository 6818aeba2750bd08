"""A real HTTP receiver on 127.0.0.1 whose answers a test scripts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Delivery:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def payload(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result

    @property
    def event_id(self) -> str:
        return self.headers["webhook-id"]


# An answer: status, extra headers, seconds to wait first.
Answer = tuple[int, dict[str, str], float]


@dataclass
class Receiver:
    """Records every POST; `answer` decides the reply (default 204)."""

    port: int = 0
    answer: Callable[[Delivery], Answer] = lambda _d: (204, {}, 0.0)
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender went away mid-request (a worker killed while sending):
                    # like any HTTP server, take it for no request at all.
                    self.close_connection = True
                    return
                delivery = Delivery(
                    {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()
                )
                with receiver.lock:
                    receiver.deliveries.append(delivery)
                status, headers, delay = receiver.answer(delivery)
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def received(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)

    def wait_for(self, predicate: Callable[[list[Delivery]], bool], seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if predicate(self.received()):
                return
            time.sleep(0.05)
        raise AssertionError(
            f"receiver condition not met in {seconds} s; got {len(self.received())} deliveries"
        )
