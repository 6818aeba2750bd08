"""Gunicorn settings for the certificate service: `gunicorn -c certificate_api/gunicorn.conf.py
--bind HOST:PORT --workers N certificate_api.asgi:app`, Uvicorn workers.

Loaded by path, not as a module of the package, so the master process imports no
application code (and no prometheus_client) before the metrics directory is set.

With `reuse_port`, each worker binds a listening socket of its own (SO_REUSEPORT) when it
starts, and the kernel spreads new connections over the workers' sockets by a hash of their
addresses. With one shared socket, whichever worker's event loop wakes first accepts every
connection waiting, and a client that opens its keep-alive connections at once can find
nearly all of them on one worker (docs/architecture.md has the figures).
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from schema.settings import CommonSettings

_settings = CommonSettings()

bind = f"{_settings.host}:{_settings.certificate_api_port}"
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
# Uvicorn workers that also close connections whose headers come too slowly.
worker_class = "certificate_api.workers.HeaderTimeoutWorker"
reuse_port = True
timeout = 30
graceful_timeout = 20  # a stopping worker's time for the requests in flight
keepalive = 5
# X-Forwarded-For is believed only from TRUSTED_PROXIES (Gunicorn's own default believes
# 127.0.0.1), and then only the entries those proxies added; none when it is empty.
forwarded_allow_ips = ",".join(str(network) for network in _settings.trusted_proxies)
# The app logs every request as a JSON line with its request id.
accesslog = None
# No gunicornc control socket: its default path is shared by every Gunicorn of the user.
control_socket_disable = True
errorlog = "-"
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "schema.logs.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {"gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True}},
}

# Workers pool their Prometheus metrics in one directory, set before any of them starts.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tessera-certs-metrics-")


def _refuse_taken(server: Any, address: tuple[str, int]) -> None:
    """Exit 3 if anything listens on the address. SO_REUSEPORT would let a second instance
    bind beside the first and take part of its traffic; a probe without it is refused."""
    host, port = address[0], address[1]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            server.log.error("Cannot listen on %s:%s: address in use", host, port)
            sys.exit(3)


def on_starting(server: Any) -> None:
    """Refuse a taken port; drop metrics a previous run left behind."""
    if not server.master_pid:  # not a re-exec (USR2), whose parent still listens
        for address in server.cfg.address:
            if isinstance(address, tuple):
                _refuse_taken(server, address)
    for stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """Forget a dead worker's live gauges."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
