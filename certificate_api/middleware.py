"""The edge of every request: id, size and type checks, load shedding, metrics, access log.

A request's body is read here, whole and under a deadline, before the request counts as
in flight: a client sending its body slowly holds a coroutine and at most
`max_body_bytes` of memory, never a place under `MAX_IN_FLIGHT` that others need.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import anyio
import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from certificate_api.errors import ACME_PREFIX, acme_type, internal_error, problem
from schema.logs import request_id_var
from schema.metrics import observe_request

access_log = logging.getLogger("tessera.access")
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Routes whose bodies are not JSON (OCSP takes DER).
_RAW_BODY_PATHS = ("/api/ocsp",)


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class EdgeMiddleware:
    """Pure ASGI, so it adds little to each request."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, max_in_flight: int, body_timeout: float = 10.0
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_in_flight = max_in_flight
        self.body_timeout = body_timeout
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        incoming = headers.get(b"x-request-id", b"")
        request_id = incoming.decode() if _REQUEST_ID.fullmatch(incoming) else str(uuid.uuid4())
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_holder = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message["headers"] = _closing_after_failure(message["status"], headers)
            await send(message)

        try:
            rejection = self._reject(scope, headers)
            if rejection is None and scope["method"] in _BODY_METHODS:
                try:
                    receive = _replay(await self._read_body(receive), receive)
                except _Disconnected:
                    status_holder[0] = 499  # the client left; nobody to answer
                    return
                except _TooLarge:
                    rejection = self._too_large()
                except TimeoutError:
                    rejection = problem(
                        408,
                        "Request Timeout",
                        f"the request body did not arrive within {self.body_timeout:g} s",
                        {"Connection": "close"},
                    )
            if rejection is None and self.in_flight >= self.max_in_flight:
                rejection = problem(
                    503,
                    "Service Unavailable",
                    "the service is at capacity; retry shortly",
                    {"Retry-After": "1"},
                )
            if rejection is not None:
                await _as_acme(scope, rejection)(scope, receive, send_wrapper)
                return
            self.in_flight += 1
            try:
                await _answering_failures(self.app, scope, receive, send_wrapper)
            finally:
                self.in_flight -= 1
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            observe_request("certificate", scope["method"], template, status_holder[0], elapsed)
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status_holder[0],
                    "duration_ms": round(elapsed * 1000, 2),
                    "client": (scope.get("client") or ("", 0))[0],
                },
            )
            request_id_var.reset(token)

    def _too_large(self) -> Any:
        return problem(
            413,
            "Content Too Large",
            f"request body is larger than the {self.max_body_bytes // 1024} KiB limit",
        )

    def _reject(self, scope: Scope, headers: dict[bytes, bytes]) -> Any:
        """A refusal decided by the headers alone (size, media type), else None."""
        if scope["method"] not in _BODY_METHODS:
            return None
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return self._too_large()
        if scope["path"].startswith(_RAW_BODY_PATHS):
            return None
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        has_body = length not in (None, b"0") or b"transfer-encoding" in headers
        # ACME requests are JWS (RFC 8555 section 6.2); everything else is JSON.
        is_acme = scope["path"].startswith(ACME_PREFIX)
        expected = b"application/jose+json" if is_acme else b"application/json"
        if has_body and media_type != expected:
            return problem(
                415, "Unsupported Media Type", f"request body must be {expected.decode()}"
            )
        return None

    async def _read_body(self, receive: Receive) -> bytes:
        """The whole body, within `max_body_bytes` and `body_timeout` (TimeoutError)."""
        chunks: list[bytes] = []
        seen = 0
        with anyio.fail_after(self.body_timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Disconnected
                chunk = message.get("body", b"")
                seen += len(chunk)
                if seen > self.max_body_bytes:
                    raise _TooLarge
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)


def _closing_after_failure(
    status: int, headers: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """A 5xx answer's headers say `Connection: close`: the server ends the connection
    cleanly once the answer is out, rather than keep alive a connection in doubt."""
    if status >= 500 and not any(name.lower() == b"connection" for name, _ in headers):
        return [*headers, (b"connection", b"close")]
    return headers


async def _answering_failures(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """The app; an exception it raises before answering is answered here, a 500 like every
    other answer (request id, ACME headers, `Connection: close`), rather than by
    Starlette's outermost handler, which answers around this middleware and then leaves
    the server the exception (Uvicorn drops the connection)."""
    started = False

    async def watched(message: Message) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await app(scope, receive, watched)
    except Exception:
        if started:
            raise  # too late for an answer: the server drops the connection
        await internal_error(scope["path"])(scope, receive, send)


def _as_acme(scope: Scope, rejection: Any) -> Any:
    """A refusal of an ACME path carries an ACME error type (clients read `type`)."""
    kind = acme_type(scope["path"], rejection.status_code)
    if kind is None:
        return rejection
    body = orjson.loads(rejection.body)
    headers = {
        k: v for k, v in rejection.headers.items() if k not in ("content-length", "content-type")
    }
    extra = {k: v for k, v in body.items() if k not in ("type", "status", "title", "detail")}
    return problem(body["status"], body["title"], body["detail"], headers, **extra, type=kind)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then waits as the server's does
    (for the disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed
