"""`python -m certificate_api.serve`: the certificate service's Uvicorn workers, each
accepting connections on a listening socket of its own.

`uvicorn --workers N` gives every worker the same listening socket, and whichever worker
wakes first accepts every connection that is waiting. A client that opens its keep-alive
connections at once (a load balancer, a connection pool) can end up with 29 of 32 on one
worker and 3 on the other, for as long as they stay open: one core busy, the other idle,
and the busy worker's queue in every p99 (docs/performance.md). Here each worker gets a
socket of its own, all bound to the same address with SO_REUSEPORT, and the kernel spreads
new connections across them by a hash of their addresses.

This process only supervises:
- It refuses to start when the address is taken, by another instance too (SO_REUSEPORT
  alone would let a second instance share the port and split the traffic).
- It holds every socket, listening, so connections the kernel gives a worker that is
  starting or restarting wait in that socket's backlog instead of being refused.
- A worker that stops before it is ready at first start stops the service with its exit
  code (3 for Uvicorn's start-up failure, e.g. the database unreachable): that is a
  configuration to fix, not a crash to retry. Later, a worker that dies is replaced, with
  a growing pause while replacements keep failing; the other workers go on serving.
- SIGINT or SIGTERM: one SIGTERM to each worker (Uvicorn's graceful shutdown), then exit 0.
- Workers get SIGTERM if this process dies, so none is left serving on its own.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import multiprocessing
import multiprocessing.process
import multiprocessing.synchronize
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from certificate_api.http_protocol import HeaderTimeoutProtocol

APP = "certificate_api.asgi:app"
PR_SET_PDEATHSIG = 1
MAX_PAUSE_SECONDS = 30.0
logger = logging.getLogger("uvicorn.error")
_spawn = multiprocessing.get_context("spawn")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def address_free(host: str, port: int) -> None:
    """OSError (EADDRINUSE) if anything listens on the address, another instance included."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def listening_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A socket bound with SO_REUSEPORT and listening: several share one address, each with
    its own queue of connections."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """Uvicorn's server, telling the supervisor when it has started."""

    def __init__(self, config: uvicorn.Config, ready: multiprocessing.synchronize.Event) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            self.ready.set()


def _end_with_parent(parent: int) -> None:
    """SIGTERM when the supervisor dies (Linux), as if it had stopped us."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _worker(
    options: dict[str, Any],
    sock: socket.socket,
    ready: multiprocessing.synchronize.Event,
    parent: int,
) -> None:
    """One worker process: a Uvicorn server on its own socket."""
    _end_with_parent(parent)
    HeaderTimeoutProtocol.header_timeout = options.pop("header_timeout")
    config = uvicorn.Config(APP, http=HeaderTimeoutProtocol, **options)  # sets up logging first
    try:
        _Server(config, ready).run(sockets=[sock])
    except Exception:
        logger.exception("worker failed")
        sys.exit(1)


@dataclass
class _Slot:
    """One socket and the worker serving it."""

    sock: socket.socket
    ready: multiprocessing.synchronize.Event = field(default_factory=_spawn.Event)
    worker: multiprocessing.process.BaseProcess | None = None
    failures: int = 0  # replacements in a row that stopped before they were ready
    retry_at: float = 0.0


class Supervisor:
    """Starts one worker per socket, replaces those that die, stops them all on a signal."""

    def __init__(self, options: dict[str, Any], sockets: list[socket.socket]) -> None:
        self.options = options
        self.slots = [_Slot(sock) for sock in sockets]
        self.stopping = threading.Event()

    def _start(self, slot: _Slot) -> None:
        slot.ready.clear()
        slot.worker = _spawn.Process(
            target=_worker, args=(self.options, slot.sock, slot.ready, os.getpid())
        )
        slot.worker.start()
        logger.info("Started worker process [%s]", slot.worker.pid)

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self.stopping.set())
        try:
            for slot in self.slots:
                self._start(slot)
            code = self._first_start()
            while code == 0 and not self.stopping.wait(0.5):
                self._replace_dead()
            return code
        finally:
            self._stop()

    def _first_start(self) -> int:
        """0 once every worker is ready; else the exit code of the first that stopped."""
        while not self.stopping.is_set():
            if all(slot.ready.is_set() for slot in self.slots):
                logger.info("All %s workers ready", len(self.slots))
                return 0
            for slot in self.slots:
                if slot.worker is not None and not slot.worker.is_alive():
                    logger.error("Worker [%s] could not start; stopping", slot.worker.pid)
                    code = slot.worker.exitcode
                    return code if code is not None and code > 0 else 1
            time.sleep(0.1)
        return 0

    def _replace_dead(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            worker = slot.worker
            if worker is not None:
                if worker.is_alive():
                    continue
                if slot.ready.is_set():
                    slot.failures = 0
                    logger.warning(
                        "Worker [%s] died (%s); replacing it", worker.pid, worker.exitcode
                    )
                    slot.retry_at = now
                else:  # its replacement stopped before it was ready: pause longer each time
                    slot.failures += 1
                    pause = min(MAX_PAUSE_SECONDS, 2.0**slot.failures)
                    logger.error(
                        "Worker [%s] stopped before it was ready (%s); trying again in %.0f s",
                        worker.pid,
                        worker.exitcode,
                        pause,
                    )
                    slot.retry_at = now + pause
                slot.worker = None
            if now >= slot.retry_at:
                self._start(slot)

    def _stop(self) -> None:
        live = [s.worker for s in self.slots if s.worker is not None and s.worker.is_alive()]
        for worker in live:
            worker.terminate()  # SIGTERM: Uvicorn finishes what is in flight
        # The workers stop listening as they shut down; with these copies closed too, new
        # connections are refused at once instead of waiting in a queue nobody reads.
        for slot in self.slots:
            slot.sock.close()
        grace = float(self.options.get("timeout_graceful_shutdown") or 0) + 5
        for worker in live:
            worker.join(grace)
            if worker.is_alive():
                logger.warning("Worker [%s] still running after %.0f s; killing", worker.pid, grace)
                worker.kill()
                worker.join()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m certificate_api.serve", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5002)
    parser.add_argument("--workers", type=int, default=1, help="processes (1)")
    parser.add_argument("--log-config", help="logging configuration file (JSON, YAML or INI)")
    parser.add_argument(
        "--timeout-graceful-shutdown",
        type=int,
        default=20,
        help="seconds a stopping worker waits for requests in flight (20)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds a request's headers may take to arrive before the connection is closed",
    )
    parser.add_argument("--access-log", action="store_true", help="Uvicorn's own access log")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "access_log": args.access_log,
        "timeout_graceful_shutdown": args.timeout_graceful_shutdown,
    }
    if args.log_config:
        options["log_config"] = args.log_config
    uvicorn.Config(APP, **options)  # sets up this process's logging as the workers' is
    options["header_timeout"] = args.header_timeout
    shown = f"[{args.host}]" if ":" in args.host else args.host
    try:
        address_free(args.host, args.port)
        sockets = [listening_socket(args.host, args.port) for _ in range(max(1, args.workers))]
    except OSError as exc:
        logger.error("Cannot listen on %s:%s: %s", shown, args.port, exc)
        return STARTUP_FAILURE
    logger.info(
        "Listening on http://%s:%s with %s worker(s), a socket each",
        shown,
        args.port,
        len(sockets),
    )
    return Supervisor(options, sockets).run()


if __name__ == "__main__":
    sys.exit(main())
