"""Every failure as RFC 9457 problem+json, in one place: the core's domain errors (their
status, and each domain field at the HTTP location this service carries it in), this
service's own transport errors, and FastAPI's and Starlette's."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from core import errors as domain
from schema.logs import request_id_var

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


class ApiError(Exception):
    """An error a client should see, with its status and a clear detail."""

    status = 400
    title = "Bad Request"

    def __init__(
        self,
        detail: str,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.errors = errors


class BadRequest(ApiError):
    status, title = 400, "Bad Request"


class ServiceUnavailable(ApiError):
    status, title = 503, "Service Unavailable"


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """A problem+json response."""
    import orjson

    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM, headers=headers)


ACME_PREFIX = "/acme/"


def acme_type(path: str, status: int) -> str | None:
    """The ACME error type of a transport-level refusal of an ACME path (RFC 8555 section
    6.7: ACME clients read `type`), or None for any other path."""
    if not path.startswith(ACME_PREFIX):
        return None
    kind = "rateLimited" if status == 429 else "serverInternal" if status >= 500 else "malformed"
    return f"urn:ietf:params:acme:error:{kind}"


# A domain error's status and title.
_STATUS: dict[type[domain.DomainError], tuple[int, str]] = {
    domain.Invalid: (422, "Unprocessable Content"),
    domain.Unauthorized: (401, "Unauthorized"),
    domain.Forbidden: (403, "Forbidden"),
    domain.NotFound: (404, "Not Found"),
    domain.Conflict: (409, "Conflict"),
    domain.Gone: (410, "Gone"),
    domain.RateLimited: (429, "Too Many Requests"),
    domain.Busy: (503, "Service Unavailable"),
}
# Where this service carries the domain fields that are not in a request body.
_OUTSIDE_BODY: dict[str, list[str | int]] = {
    "idempotency_key": ["header", "Idempotency-Key"],
    "cursor": ["query", "cursor"],
}


def location(field: Sequence[str | int]) -> list[str | int]:
    """The HTTP location (`loc`) of a domain field of this service's requests."""
    head = field[0] if field else ""
    if isinstance(head, str) and head in _OUTSIDE_BODY:
        return [*_OUTSIDE_BODY[head], *field[1:]]
    return ["body", *field]


def domain_problem(exc: domain.DomainError) -> Response:
    """A domain error as problem+json: its status, its fields at their HTTP locations."""
    status, title = next(
        (mapped for kind, mapped in _STATUS.items() if isinstance(exc, kind)), (400, "Bad Request")
    )
    headers: dict[str, str] = {}
    if isinstance(exc, domain.Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="tessera"'
    if isinstance(exc, domain.TryLater):
        headers["Retry-After"] = str(exc.retry_after)
    detail, extra = exc.detail, {}
    if exc.fields:
        errors = [{"loc": location(f.field), "msg": f.msg} for f in exc.fields]
        extra["errors"] = errors
        if isinstance(exc, domain.Invalid):
            where = ", ".join(".".join(map(str, err["loc"])) for err in errors)
            detail = f"invalid request: {where}: {'; '.join(f.msg for f in exc.fields)}"
    return problem(status, title, detail, headers, **extra)


def _field_errors(errors: Iterable[Any]) -> list[dict[str, Any]]:
    # Never echo the rejected input: it may be a key or a password.
    return [{"loc": list(err["loc"]), "msg": err["msg"]} for err in errors]


RETRY_SOON = {"Retry-After": "1"}
RETRY_LATER = {"Retry-After": "5"}


def register_error_handlers(app: FastAPI) -> None:
    """Make every failure problem+json, including FastAPI's and Starlette's own."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> Response:
        extra = {"errors": exc.errors} if exc.errors else {}
        return problem(exc.status, exc.title, exc.detail, exc.headers, **extra)

    @app.exception_handler(domain.DomainError)
    async def _domain_error(_request: Request, exc: domain.DomainError) -> Response:
        return domain_problem(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        errors = _field_errors(exc.errors())
        if any(err["msg"].startswith("JSON decode error") for err in errors):
            return problem(400, "Bad Request", "request body is not valid JSON")
        fields = ", ".join(".".join(map(str, err["loc"])) for err in errors)
        return problem(422, "Unprocessable Content", f"invalid request: {fields}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = {404: "no such resource", 405: "method not allowed on this resource"}.get(
            exc.status_code, str(exc.detail)
        )
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "Error")
        kind = acme_type(request.url.path, exc.status_code)
        headers = dict(exc.headers or {})
        return problem(exc.status_code, title, detail, headers, **({"type": kind} if kind else {}))

    @app.exception_handler(SQLAlchemyTimeout)
    async def _pool_exhausted(request: Request, _exc: SQLAlchemyTimeout) -> Response:
        # Every database connection of this process stayed busy for DB_POOL_TIMEOUT.
        log.warning("database pool exhausted")
        return problem(
            503,
            "Service Unavailable",
            "the service is at capacity; retry shortly",
            RETRY_SOON,
            **_typed(request.url.path, 503),
        )

    @app.exception_handler(DBAPIError)
    async def _database_down(request: Request, exc: DBAPIError) -> Response:
        if not exc.connection_invalidated and not isinstance(
            exc, OperationalError | InterfaceError
        ):
            return internal_error(request.url.path)
        log.warning("database unavailable", extra={"error": type(exc.orig).__name__})
        return problem(
            503,
            "Service Unavailable",
            "the database is unavailable",
            RETRY_LATER,
            **_typed(request.url.path, 503),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _exc: Exception) -> Response:
        return internal_error(request.url.path)


def _typed(path: str, status: int) -> dict[str, Any]:
    """The ACME error type of a failure of an ACME path, as a problem's `type`."""
    kind = acme_type(path, status)
    return {"type": kind} if kind else {}


def internal_error(path: str = "") -> Response:
    """A 500 that says nothing but the request id; the log line has the stack trace."""
    request_id = request_id_var.get() or str(uuid.uuid4())
    log.exception("unhandled error")
    return problem(
        500,
        "Internal Server Error",
        f"an unexpected error occurred; quote request id {request_id}",
        request_id=request_id,
        **_typed(path, 500),
    )


_PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "example": "about:blank"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    },
                    "msg": {"type": "string"},
                },
            },
        },
    },
}
_EXAMPLES = {
    400: "request body is not valid JSON",
    401: "missing, invalid or expired access token",
    403: "only the certificate's owner can download its private key",
    404: "no such certificate",
    408: "the request body did not arrive within 10 s",
    409: "a revoked certificate cannot be activated",
    410: "the private key was destroyed or never held",
    413: "request body is larger than the 64 KiB limit",
    415: "request body must be application/json",
    429: "at most 600 certificates a minute per account; retry later",
    422: "invalid request: body.dns_names.0: 'exa mple.com': label 'exa mple' must be ...",
    503: "the service is at capacity; retry shortly",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting each status as problem+json with an example."""
    return {
        status: {
            "description": _EXAMPLES.get(status, "error"),
            "content": {
                PROBLEM: {
                    "schema": _PROBLEM_SCHEMA,
                    "example": {
                        "type": "about:blank",
                        "title": "",
                        "status": status,
                        "detail": _EXAMPLES.get(status, ""),
                    },
                }
            },
        }
        for status in statuses
    }
