"""POST /api/certificates/{id}/renew: parse, call the renewal service, shape the reply."""

from __future__ import annotations

import uuid
from datetime import timedelta
from types import SimpleNamespace

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from certificate_api.certificates import idempotency
from certificate_api.certificates.router import IdempotencyKey, reply, shape
from certificate_api.certificates.schemas import CertificateCreated
from certificate_api.deps import Caller, RuntimeDep, SessionDep
from certificate_api.errors import problems
from certificate_api.renewal import service
from schema.certificates import Certificate

router = APIRouter(prefix="/api/certificates", tags=["certificates"])


class RenewRequest(BaseModel):
    """What may change in a renewal: validity, and the key (a CSR keeps it with you)."""

    model_config = ConfigDict(extra="forbid")

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
    responses=problems(401, 404, 409, 422),
)
def renew_certificate(
    certificate_id: uuid.UUID,
    runtime: RuntimeDep,
    session: SessionDep,
    caller: Caller,
    body: RenewRequest | None = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A new certificate for the same names and key type (a new key pair unless `csr`),
    with `renewed_from` naming this one. Revoked, or on an administrator's hold: 409."""
    body = body or RenewRequest()
    settings = runtime.settings
    fingerprint = ""
    if idempotency_key is not None:
        fingerprint = idempotency.request_fingerprint(
            {"certificate_id": str(certificate_id), **body.model_dump()}
        )
    renewed = service.renew(
        session,
        caller.account_id,
        certificate_id,
        service.RenewOrder(body.validity_days, body.csr, body.revoke_previous),
        service.Policy(
            ca=runtime.ca,
            keyring=runtime.keyring,
            keys=runtime.key_pool,
            public_base_url=settings.public_base_url,
            default_validity_days=settings.default_validity_days,
            max_validity_days=settings.max_validity_days,
            idempotency_ttl=timedelta(hours=settings.idempotency_ttl_hours),
        ),
        idempotency_key,
        fingerprint,
    )
    cert = renewed.certificate
    columns = {column.key: getattr(cert, column.key) for column in Certificate.__table__.columns}
    row = SimpleNamespace(**columns, has_private_key=renewed.has_private_key)
    payload = shape(row, runtime.authorities.chain_pem(cert.issuer_id))
    payload["private_key_pem"] = renewed.private_key_pem
    return reply(payload, 201, Location=f"/api/certificates/{cert.id}")
