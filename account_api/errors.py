"""One error family, turned into RFC 9457 problem+json by one set of handlers."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, json
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from werkzeug.exceptions import HTTPException

from core import errors as domain
from schema.logs import request_id_var

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


class ApiError(Exception):
    """An error a client should see, with its status and a clear detail."""

    status = 400
    title = "Bad Request"

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class NotFound(ApiError):
    status, title = 404, "Not Found"


class Conflict(ApiError):
    status, title = 409, "Conflict"


class Unauthorized(ApiError):
    status, title = 401, "Unauthorized"

    def __init__(self, detail: str = "missing, invalid or expired access token") -> None:
        super().__init__(detail, {"WWW-Authenticate": 'Bearer realm="tessera"'})


class Forbidden(ApiError):
    status, title = 403, "Forbidden"


class Unprocessable(ApiError):
    status, title = 422, "Unprocessable Content"


class TooManyRequests(ApiError):
    status, title = 429, "Too Many Requests"


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """A problem+json response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM)
    response.headers.update(headers or {})
    return response


def validation_problem(errors: Iterable[Any], where: str = "") -> Response:
    """422 listing each field as `{"loc", "msg"}`; the rejected values are never echoed."""
    items = [
        {"loc": [where, *err["loc"]] if where else list(err["loc"]), "msg": err["msg"]}
        for err in errors
    ]
    fields = ", ".join(".".join(str(p) for p in item["loc"]) or "body" for item in items)
    return problem(422, "Unprocessable Content", f"invalid request: {fields}", errors=items)


def on_validation_error(exc: ValidationError) -> Response:
    """flask-openapi3's hook: pydantic errors become a 422 problem."""
    return validation_problem(exc.errors(include_input=False, include_url=False))


# A domain error's status and title.
_DOMAIN_STATUS: dict[type[domain.DomainError], tuple[int, str]] = {
    domain.Invalid: (422, "Unprocessable Content"),
    domain.Unauthorized: (401, "Unauthorized"),
    domain.Forbidden: (403, "Forbidden"),
    domain.NotFound: (404, "Not Found"),
    domain.Conflict: (409, "Conflict"),
    domain.Gone: (410, "Gone"),
    domain.RateLimited: (429, "Too Many Requests"),
    domain.Busy: (503, "Service Unavailable"),
}


def domain_problem(exc: domain.DomainError) -> Response:
    """A core domain error as problem+json; this service's fields are all in the body."""
    status, title = next(
        (mapped for kind, mapped in _DOMAIN_STATUS.items() if isinstance(exc, kind)),
        (400, "Bad Request"),
    )
    headers: dict[str, str] = {}
    if isinstance(exc, domain.Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="tessera"'
    if isinstance(exc, domain.TryLater):
        headers["Retry-After"] = str(exc.retry_after)
    errors = [{"loc": list(f.field), "msg": f.msg} for f in exc.fields]
    return problem(status, title, exc.detail, headers, **({"errors": errors} if errors else {}))


def register_error_handlers(app: Flask) -> None:
    """Make every failure, including werkzeug's own 404/405/413/415, problem+json."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return problem(exc.status, exc.title, exc.detail, exc.headers)

    @app.errorhandler(domain.DomainError)
    def _domain_error(exc: domain.DomainError) -> Response:
        return domain_problem(exc)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        detail = {
            404: "no such resource",
            405: "method not allowed on this resource",
            413: "request body is larger than the 64 KiB limit",
        }.get(status, exc.description or exc.name)
        allowed = getattr(exc, "valid_methods", None)
        headers = {"Allow": ", ".join(allowed)} if allowed else {}
        return problem(status, exc.name, detail, headers)

    @app.errorhandler(SQLAlchemyTimeout)
    def _pool_exhausted(_exc: SQLAlchemyTimeout) -> Response:
        log.warning("database pool exhausted")
        return problem(
            503,
            "Service Unavailable",
            "the service is at capacity; retry shortly",
            {"Retry-After": "1"},
        )

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError) -> Response:
        if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
            log.warning("database unavailable", extra={"error": type(exc.orig).__name__})
            return problem(
                503, "Service Unavailable", "the database is unavailable", {"Retry-After": "5"}
            )
        return _unexpected(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        request_id = request_id_var.get() or str(uuid.uuid4())
        log.exception("unhandled error")
        return problem(
            500,
            "Internal Server Error",
            f"an unexpected error occurred; quote request id {request_id}",
            request_id=request_id,
        )
