"""ACME errors at the edge: problem+json with `urn:ietf:params:acme:error:*` types, the core's
domain errors translated, and anything else under /acme/ (an unknown path, a wrong method)
answered in the same form."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from certificate_api.acme.shapes import PREFIX
from certificate_api.errors import PROBLEM
from core import errors as domain
from core.acme.problems import AcmeProblem
from core.policy import DENIED


def from_domain(exc: domain.DomainError, *, csr: bool = False) -> AcmeProblem:
    """A core error as the ACME error a client understands."""
    if isinstance(exc, domain.TryLater):
        kind = "rateLimited" if isinstance(exc, domain.RateLimited) else "serverInternal"
        status = 429 if kind == "rateLimited" else 503
        return AcmeProblem(
            kind, exc.detail, status=status, headers={"Retry-After": str(exc.retry_after)}
        )
    if isinstance(exc, domain.Invalid):
        return AcmeProblem("badCSR" if csr else "malformed", exc.detail)
    if isinstance(exc, domain.Forbidden):
        if any(f.msg == DENIED for f in exc.fields):
            return AcmeProblem("rejectedIdentifier", exc.detail)
        return AcmeProblem("unauthorized", exc.detail)
    if isinstance(exc, domain.Unauthorized):
        return AcmeProblem("unauthorized", "the account this ACME account acts for is gone")
    if isinstance(exc, domain.NotFound):
        return AcmeProblem("malformed", exc.detail, status=404)
    if isinstance(exc, domain.Conflict):
        return AcmeProblem("malformed", exc.detail, status=409)
    return AcmeProblem("malformed", exc.detail)


def acme_response(problem: AcmeProblem) -> Response:
    """The problem document; the edge adds a fresh Replay-Nonce."""
    return Response(
        json.dumps(problem.body()),
        status_code=problem.status,
        media_type=PROBLEM,
        headers=problem.headers,
    )


def is_acme(request: Request) -> bool:
    """Whether a request is for an ACME resource."""
    return request.url.path.startswith(PREFIX + "/")


def register(app: FastAPI) -> None:
    """Answer ACME problems, and the generic errors of ACME paths, as ACME errors."""

    @app.exception_handler(AcmeProblem)
    async def _acme(_request: Request, exc: AcmeProblem) -> Response:
        return acme_response(exc)


def http_error(exc: StarletteHTTPException) -> Response:
    """A routing error (unknown ACME path, wrong method) under /acme/."""
    detail = {404: "no such ACME resource", 405: "method not allowed on this resource"}
    return acme_response(
        AcmeProblem(
            "malformed", detail.get(exc.status_code, str(exc.detail)), status=exc.status_code
        )
    )
