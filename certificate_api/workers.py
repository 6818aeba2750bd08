"""The Uvicorn worker Gunicorn runs the certificate service in (certificate_api/gunicorn.conf.py).

Uvicorn's own worker, speaking HTTP through `HeaderTimeoutProtocol`: a connection whose
request headers do not arrive whole within HEADER_TIMEOUT_SECONDS (default 10) is closed,
so a client that opens connections and sends nothing cannot hold sockets forever.
"""

from __future__ import annotations

import os
from typing import Any

from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]

from certificate_api.http_protocol import HeaderTimeoutProtocol


class HeaderTimeoutWorker(UvicornWorker):  # type: ignore[misc]
    """UvicornWorker with a deadline on request headers."""

    CONFIG_KWARGS: dict[str, Any] = {**UvicornWorker.CONFIG_KWARGS, "http": HeaderTimeoutProtocol}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        HeaderTimeoutProtocol.header_timeout = float(
            os.environ.get("HEADER_TIMEOUT_SECONDS", str(HeaderTimeoutProtocol.header_timeout))
        )
        super().__init__(*args, **kwargs)
