"""POST /api/certificates/{id}/renew: parse, call the core's renewal, shape the reply."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from certificate_api.certificates.router import IdempotencyKey, reply, shape
from certificate_api.certificates.schemas import CertificateCreated
from certificate_api.deps import Caller, RuntimeDep
from certificate_api.errors import problems
from core.renewal import RenewRequest, renew_certificate

router = APIRouter(prefix="/api/certificates", tags=["certificates"])


class RenewBody(BaseModel):
    """What may change in a renewal: validity, and the key (a CSR keeps it with you)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    validity_days: int | None = Field(default=None, ge=1, description="default as for issuance")
    csr: str | None = Field(
        default=None, max_length=16384, description="PEM; its key must be of the same type"
    )
    revoke_previous: bool = Field(
        default=False, description="revoke the renewed certificate as superseded, atomically"
    )


@router.post(
    "/{certificate_id}/renew",
    status_code=201,
    response_model=CertificateCreated,
    summary="Renew a certificate",
    responses=problems(400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 503),
)
async def renew(
    certificate_id: uuid.UUID,
    runtime: RuntimeDep,
    caller: Caller,
    body: RenewBody | None = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A new certificate for the same names and key type (a new key pair unless `csr`),
    with `renewed_from` naming this one; the names are checked again as for any issuance
    (403). Revoked, or on an administrator's hold: 409."""
    request = RenewRequest(**(body or RenewBody()).model_dump())
    result = await renew_certificate(
        runtime.issuer, caller, certificate_id, request, idempotency_key
    )
    cert = result.certificate
    payload = shape(cert, runtime.authorities.chain_pem(cert.issuer_id))
    payload["private_key_pem"] = result.private_key_pem
    return reply(payload, 201, Location=f"/api/certificates/{cert.id}")
