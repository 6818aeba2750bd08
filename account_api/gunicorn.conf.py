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
# argon2 is CPU-bound: one process per core, a few threads each for the I/O between hashes.
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = 30
graceful_timeout = 30
keepalive = 5
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
