"""HTTP routes of domain authorizations: parse, call core/domains.py, shape the reply."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from certificate_api.certificates.router import reply
from certificate_api.deps import Caller, RuntimeDep
from certificate_api.domains.schemas import DomainCreate, DomainOut, DomainPage, ValidateRequest
from certificate_api.errors import problems
from core import domains, validation
from schema.base import utcnow
from schema.domains import ChallengeType, DomainStatus, shown_status

router = APIRouter(prefix="/api/domains", tags=["domains"])
ERRORS_CREATE = problems(400, 401, 403, 408, 413, 415, 422)
ERRORS_VALIDATE = problems(400, 401, 404, 408, 409, 413, 415, 422)


def shape(row: domains.AuthorizationRow, http_port: int) -> dict[str, Any]:
    """The contract's domain authorization object."""
    status = shown_status(row.status, row.expires_at, utcnow())
    key_auth = validation.key_authorization(
        row.token, validation.account_thumbprint(row.account_id)
    )
    challenges = []
    for kind in domains.subject_of(row).challenges():
        challenge: dict[str, Any] = {
            "type": kind.value,
            "token": row.token,
            "status": _challenge_status(row, kind, status),
            "key_authorization": key_auth,
        }
        if kind is ChallengeType.HTTP_01:
            challenge["url"] = validation.http01_url(row.name, http_port, row.token)
        else:
            challenge["record_name"] = validation.dns01_record_name(row.name)
            challenge["record_value"] = validation.dns01_record_value(key_auth)
        challenges.append(challenge)
    return {
        "id": row.id,
        "account_id": row.account_id,
        "name": row.name,
        "include_subdomains": row.include_subdomains,
        "status": status.value,
        "expires_at": row.expires_at,
        "error": row.error,
        "challenges": challenges,
        "created_at": row.created_at,
        "validated_at": row.validated_at,
    }


def _challenge_status(
    row: domains.AuthorizationRow, kind: ChallengeType, status: DomainStatus
) -> str:
    if row.validation_type != kind.value:
        return "pending"
    if status is DomainStatus.PENDING:
        return "processing"  # asked for; a worker checks it
    return "invalid" if status is DomainStatus.INVALID else "valid"


@router.post(
    "",
    status_code=201,
    response_model=DomainOut,
    summary="Ask to be authorized for a name",
    responses={200: {"description": "the live authorization already held"}, **ERRORS_CREATE},
)
async def create_domain(body: DomainCreate, runtime: RuntimeDep, caller: Caller) -> Response:
    """A pending authorization with its challenges (201), or the pending or valid one you
    already have for the same name and `include_subdomains` (200)."""
    wanted = domains.subject(body.name, body.include_subdomains, runtime.names.policy)
    row, new = await domains.create(runtime.db, caller, wanted)
    payload = shape(row, runtime.settings.validation_http_port)
    return reply(payload, 201 if new else 200, Location=f"/api/domains/{row.id}")


@router.post(
    "/{domain_id}/validate",
    status_code=202,
    response_model=DomainOut,
    summary="Check a challenge",
    responses={200: {"description": "already valid: unchanged"}, **ERRORS_VALIDATE},
)
async def validate_domain(
    domain_id: uuid.UUID, body: ValidateRequest, runtime: RuntimeDep, caller: Caller
) -> Response:
    """Publish the challenge's value first. The check runs outside this request; poll the
    authorization until it is `valid` or `invalid` (a `domain.*` event says so too)."""
    row, asked = await domains.request_validation(
        runtime.db, caller, domain_id, ChallengeType(body.type)
    )
    return reply(shape(row, runtime.settings.validation_http_port), 202 if asked else 200)


@router.get(
    "",
    response_model=DomainPage,
    summary="List domain authorizations",
    responses=problems(401, 422),
)
async def list_domains(
    runtime: RuntimeDep,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    account_id: Annotated[uuid.UUID | None, Query(description="admins: one account")] = None,
) -> Response:
    """Your authorizations (admins: anyone's), newest first, a page at a time."""
    rows, next_cursor = await domains.list_page(runtime.db, caller, account_id, cursor, limit)
    port = runtime.settings.validation_http_port
    return reply({"items": [shape(r, port) for r in rows], "next_cursor": next_cursor})


@router.get(
    "/{domain_id}",
    response_model=DomainOut,
    summary="Fetch a domain authorization",
    responses=problems(401, 404, 422),
)
async def get_domain(domain_id: uuid.UUID, runtime: RuntimeDep, caller: Caller) -> Response:
    """One authorization, to its owner or an admin."""
    row = await domains.get(runtime.db, caller, domain_id)
    return reply(shape(row, runtime.settings.validation_http_port))


@router.delete(
    "/{domain_id}",
    status_code=204,
    summary="Delete a domain authorization",
    responses=problems(401, 404, 422),
)
async def delete_domain(domain_id: uuid.UUID, runtime: RuntimeDep, caller: Caller) -> Response:
    """No new certificate for what it covered until authorized again; issued ones stay."""
    await domains.remove(runtime.db, caller, domain_id)
    return Response(status_code=204)
