"""A receiver that misbehaves at the socket level: answers no HTTP library would send."""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable

# Each play gets the connected socket after the request head has been read.
Play = Callable[[socket.socket, threading.Event], None]


def _send(reply: bytes) -> Play:
    def play(sock: socket.socket, _stop: threading.Event) -> None:
        sock.sendall(reply)

    return play


def _ten_megabytes(sock: socket.socket, _stop: threading.Event) -> None:
    size = 10 * 1024 * 1024
    sock.sendall(b"HTTP/1.1 500 Oops\r\ncontent-length: %d\r\n\r\n" % size)
    chunk = b"x" * 65536
    try:
        for _ in range(size // len(chunk)):
            sock.sendall(chunk)
    except OSError:
        pass  # the worker stops reading early, as it should


def _endless_body(sock: socket.socket, stop: threading.Event) -> None:
    sock.sendall(b"HTTP/1.1 503 Busy\r\ntransfer-encoding: chunked\r\n\r\n")
    try:
        while not stop.is_set():
            sock.sendall(b"400\r\n" + b"y" * 1024 + b"\r\n")
    except OSError:
        pass


def _trickle(sock: socket.socket, stop: threading.Event) -> None:
    """A status line and headers one byte at a time, each byte well inside a read timeout."""
    try:
        for byte in b"HTTP/1.1 200 OK\r\nx-slow: " + b"z" * 100_000:
            if stop.wait(0.2):
                return
            sock.sendall(bytes([byte]))
    except OSError:
        pass


def _reset(sock: socket.socket, _stop: threading.Event) -> None:
    # SO_LINGER with a zero timeout: close sends RST instead of FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _hang(_sock: socket.socket, stop: threading.Event) -> None:
    stop.wait(60)


PLAYS: dict[str, Play] = {
    "huge retry-after": _send(
        b"HTTP/1.1 503 Busy\r\nretry-after: 99999999999999999999\r\ncontent-length: 0\r\n\r\n"
    ),
    "superscript retry-after": _send(
        "HTTP/1.1 429 Slow down\r\nretry-after: ²\r\ncontent-length: 0\r\n\r\n".encode()
    ),
    "zoneless date retry-after": _send(
        b"HTTP/1.1 503 Busy\r\nretry-after: Wed, 21 Oct 2015 07:28:00 -0000\r\n"
        b"content-length: 0\r\n\r\n"
    ),
    "year 9999 retry-after": _send(
        b"HTTP/1.1 503 Busy\r\nretry-after: Fri, 31 Dec 9999 23:59:59 GMT\r\n"
        b"content-length: 0\r\n\r\n"
    ),
    "bogus headers": _send(
        b"HTTP/1.1 500 Bad\r\nno colon here\r\nx-bytes: \xff\xfe\x00\r\ncontent-length: -3\r\n\r\n"
    ),
    "broken status line": _send(b"HTPT/9.x banana\r\n\r\n"),
    "status 999 and garbage": _send(b"HTTP/1.1 999 \xff\r\ncontent-length: 0\r\n\r\n"),
    "10 MB body": _ten_megabytes,
    "never-ending body": _endless_body,
    "trickled headers": _trickle,
    "reset connection": _reset,
    "hang": _hang,
    "close without answer": _send(b""),
}

GOOD = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"


class HostileReceiver:
    """Plays `play` to every request until `behave()`; then answers 204. Counts requests."""

    def __init__(self, play: Play) -> None:
        self.play: Play | None = play
        self.requests = 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                try:
                    while not receiver.stopping.is_set():
                        if not _read_request(sock):
                            return
                        with receiver.lock:
                            receiver.requests += 1
                            play = receiver.play
                        if play is None:
                            sock.sendall(GOOD)
                            continue
                        play(sock, receiver.stopping)
                        return  # a hostile answer ends the connection
                except OSError:
                    return  # the worker gave up on this connection

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def behave(self) -> None:
        with self.lock:
            self.play = None

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for_requests(self, count: int, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                if self.requests >= count:
                    return
            time.sleep(0.02)
        raise AssertionError(f"{count} requests expected, got {self.requests}")


def _read_request(sock: socket.socket) -> bool:
    """Read one request (head and Content-Length body); False when the client went away."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        body += chunk
    return True
