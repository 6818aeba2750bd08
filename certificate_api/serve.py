"""`python -m certificate_api.serve`: the certificate service's Uvicorn workers, each
accepting connections on a listening socket of its own.

`uvicorn --workers N` gives every worker the same listening socket, and whichever worker
wakes first accepts every connection that is waiting. A client that opens its keep-alive
connections at once (a load balancer, a connection pool) can end up with 29 of 32 on one
worker and 3 on the other, for as long as they stay open: one core busy, the other idle,
and the busy worker's queue in every p99 (docs/performance.md). Here each worker gets a
socket of its own, all bound to the same address with SO_REUSEPORT, and the kernel spreads
new connections across them by a hash of their addresses.

This process only supervises. It holds every socket, so connections that arrive while a
worker restarts wait in that socket's backlog instead of being refused; it restarts a
worker that dies, and passes SIGINT/SIGTERM on as one SIGTERM each (Uvicorn's graceful
shutdown). A worker that fails at start-up (database unreachable, say) stops the whole
service with its exit code rather than restarting in a loop.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import multiprocessing.process
import signal
import socket
import sys
import threading
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

APP = "certificate_api.asgi:app"
logger = logging.getLogger("uvicorn.error")
_spawn = multiprocessing.get_context("spawn")


def listening_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A socket bound with SO_REUSEPORT and listening: several may share one address, each
    with its own queue. It listens from here on, so connections the kernel gives it before
    its worker has started (or while it restarts) wait instead of being refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def _worker(options: dict[str, Any], sock: socket.socket) -> None:
    """One worker process: a Uvicorn server on its own socket."""
    uvicorn.Server(uvicorn.Config(APP, **options)).run(sockets=[sock])


class Supervisor:
    """Starts one worker per socket, restarts those that die, stops them all on a signal."""

    def __init__(self, options: dict[str, Any], sockets: list[socket.socket]) -> None:
        self.options = options
        self.sockets = sockets
        self.workers: list[multiprocessing.process.BaseProcess | None] = [None] * len(sockets)
        self.stopping = threading.Event()

    def _start(self, index: int) -> None:
        worker = _spawn.Process(
            target=_worker, args=(self.options, self.sockets[index]), name=f"worker-{index}"
        )
        worker.start()
        self.workers[index] = worker
        logger.info("Started worker process [%s]", worker.pid)

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self.stopping.set())
        for index in range(len(self.sockets)):
            self._start(index)
        code = 0
        while not self.stopping.wait(0.5):
            for index, worker in enumerate(self.workers):
                if worker is None or worker.is_alive():
                    continue
                if worker.exitcode == STARTUP_FAILURE:
                    logger.error("Worker [%s] failed to start; stopping", worker.pid)
                    code = STARTUP_FAILURE
                    self.stopping.set()
                    break
                logger.warning("Worker [%s] died (%s); restarting", worker.pid, worker.exitcode)
                self._start(index)
        self._stop()
        return code

    def _stop(self) -> None:
        live = [w for w in self.workers if w is not None and w.is_alive()]
        for worker in live:
            worker.terminate()  # SIGTERM: Uvicorn finishes what is in flight
        grace = float(self.options.get("timeout_graceful_shutdown") or 0) + 5
        for worker in live:
            worker.join(grace)
            if worker.is_alive():
                logger.warning("Worker [%s] still running after %.0f s; killing", worker.pid, grace)
                worker.kill()
                worker.join()
        for sock in self.sockets:
            sock.close()


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
    if args.workers <= 1:
        uvicorn.run(APP, **options)
        return 0
    uvicorn.Config(APP, **options)  # sets up this process's logging as the workers' is
    try:
        sockets = [listening_socket(args.host, args.port) for _ in range(args.workers)]
    except OSError as exc:
        logger.error("Cannot listen on %s:%s: %s", args.host, args.port, exc)
        return STARTUP_FAILURE
    logger.info(
        "Listening on http://%s:%s with %s workers, a socket each",
        args.host,
        args.port,
        args.workers,
    )
    return Supervisor(options, sockets).run()


if __name__ == "__main__":
    sys.exit(main())
