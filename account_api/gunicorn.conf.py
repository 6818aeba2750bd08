"""Gunicorn settings a deployment would use: `gunicorn -c account_api/gunicorn.conf.py`.

Loaded by path, not as a module of the package, so the master process imports no
application code (and no prometheus_client) before the metrics directory is set.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from schema.settings import CommonSettings

_settings = CommonSettings()

bind = f"{_settings.host}:{_settings.account_api_port}"
# argon2 is CPU-bound: one process per core. Each serves its connections as gevent
# greenlets: a client that sends its headers or body slowly holds a greenlet (a few KiB),
# not one of a handful of threads, so it cannot starve everyone else (docs/architecture.md).
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
timeout = 30
graceful_timeout = 30
# Also the limit on how long a request's headers may take to arrive (Gunicorn's gevent
# worker reads every request's headers under this deadline).
keepalive = 5
# How long one read of a request body (or one write of a reply) may wait for the client.
CLIENT_IO_TIMEOUT_SECONDS = float(os.environ.get("CLIENT_IO_TIMEOUT_SECONDS", "10"))


def _gevent_worker_with_io_timeout() -> type:
    """Gunicorn's gevent worker, with a timeout on every read and write of a client socket.

    Imported here, when Gunicorn reads this setting, like its own "gevent" worker class."""
    from gunicorn.workers.base_async import AsyncWorker
    from gunicorn.workers.ggevent import GeventWorker

    class Worker(GeventWorker):  # type: ignore[misc]
        def handle(self, listener: Any, client: Any, addr: Any) -> None:
            # In place of GeventWorker.handle, which makes the socket block without limit.
            client.settimeout(CLIENT_IO_TIMEOUT_SECONDS)
            AsyncWorker.handle(self, listener, client, addr)

        def load_wsgi(self) -> None:
            super().load_wsgi()
            self.wsgi = _closing_after_server_errors(self.wsgi)

    return Worker


def _closing_after_server_errors(app: Any) -> Any:
    """The app, its 5xx answers sent with `Connection: close` and the connection then
    closed: a keep-alive client never reuses a connection after a failure. (Gunicorn writes
    the Connection header itself, from its response's `force_close`: the app's own is
    dropped as hop-by-hop.)"""

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if status.startswith("5"):
                start_response.__self__.force_close()  # Gunicorn's Response
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return wsgi


worker_class = _gevent_worker_with_io_timeout
max_requests = 10000
max_requests_jitter = 1000
# The app logs every request as a JSON line with its request id; Gunicorn's own
# access log would repeat it in another format.
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
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tessera-accounts-metrics-")


def on_starting(server: Any) -> None:
    """Drop metrics a previous run left behind."""
    for stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        stale.unlink()


def pre_request(worker: Any, req: Any) -> None:
    """Answer with `Connection: close` when the app will leave part of the body unread.

    A body over the limit is refused (413) without being read, and one of unknown length
    (chunked) may be; Gunicorn then drains at most 64 KiB of what is left and otherwise
    drops the connection after an answer that promised keep-alive, so a client's next
    request on it would be lost. Closing cleanly tells the client to reconnect instead.
    """
    headers = dict(req.headers)  # names are upper-case
    length = headers.get("CONTENT-LENGTH", "")
    chunked = "chunked" in headers.get("TRANSFER-ENCODING", "").lower()
    if chunked or (length.isdigit() and int(length) > _settings.max_body_bytes):
        req.force_close()


def child_exit(server: Any, worker: Any) -> None:
    """Forget a dead worker's live gauges."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
