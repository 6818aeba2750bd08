"""HTTP routes of certificates: parse, call the service, shape the reply."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response

from certificate_api.certificates.schemas import (
    CertificateCreate,
    CertificateCreated,
    CertificateOut,
    CertificatePage,
    CertificateUpdate,
    ListQuery,
    RevokeRequest,
)
from certificate_api.deps import Caller, RuntimeDep
from certificate_api.errors import problems
from core import certificates, holds, private_keys, revocation
from core.certificates import ListFilter
from core.idempotency import Idempotency
from core.issuance import issue_certificate as issue
from core.orders import IssueRequest
from core.queries import CertificateRow
from schema.base import utcnow
from schema.certificates import Status, status_of

router = APIRouter(prefix="/api/certificates", tags=["certificates"])
PEM_CHAIN = "application/pem-certificate-chain"
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key", max_length=255, description="retry safely: same key, same result"
    ),
]


def shape(cert: CertificateRow, chain_pem: str) -> dict[str, Any]:
    """The contract's certificate object. Ids and times stay objects: `reply` writes them
    (RFC 3339 in UTC, to the second, as the contract shows: `2026-11-23T18:41:30Z`)."""
    return {
        "id": cert.id,
        "account_id": cert.account_id,
        "serial_number": cert.serial_number,
        "common_name": cert.common_name,
        "dns_names": cert.dns_names,
        "ip_addresses": cert.ip_addresses,
        "key_type": cert.key_type,
        "is_active": cert.is_active,
        "status": status_of(cert.revoked_at, cert.not_after, cert.is_active, utcnow()).value,
        "revocation_reason": cert.revocation_reason,
        "not_before": cert.not_before,
        "not_after": cert.not_after,
        "certificate_pem": cert.certificate_pem,
        "chain_pem": chain_pem,
        "has_private_key": cert.has_private_key,
        "renewed_from": cert.renewed_from,
        "created_at": cert.created_at,
        "updated_at": cert.updated_at,
    }


# UUIDs as strings, datetimes (all UTC) as `2026-11-23T18:41:30Z`: orjson writes them itself.
_JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS


def to_json(payload: dict[str, Any]) -> bytes:
    """A reply body built by us from our own rows: serialized with orjson, without
    re-validating it against the response model (which documents it in OpenAPI and is
    checked in tests)."""
    return orjson.dumps(payload, option=_JSON_OPTIONS)


def reply(payload: dict[str, Any], status_code: int = 200, **headers: str) -> Response:
    """A JSON reply (see `to_json`)."""
    return Response(
        to_json(payload),
        status_code=status_code,
        media_type="application/json",
        headers=headers or None,
    )


@router.post(
    "",
    status_code=201,
    response_model=CertificateCreated,
    response_model_exclude_none=False,
    summary="Issue a certificate",
    responses=problems(400, 401, 403, 408, 413, 415, 422, 429, 503),
)
async def issue_certificate(
    body: CertificateCreate,
    runtime: RuntimeDep,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Issue for the calling account. Without `csr` the service makes the key pair and this
    reply (only this one) carries `private_key_pem`; with `csr` the key stays with you.
    Every name must be allowed by the CA's policy and covered by a valid domain
    authorization of yours (`/api/domains`); 403 lists each one that is not."""
    request = IssueRequest(**body.model_dump())
    result = await issue(runtime.issuer, caller, request, idempotency_key)
    cert = result.certificate
    created = shape(cert, runtime.authorities.chain_pem(cert.issuer_id))
    created["private_key_pem"] = result.private_key_pem
    return reply(created, 201, Location=f"/api/certificates/{cert.id}")


def _etag(cert: CertificateRow, variant: str) -> str:
    status = status_of(cert.revoked_at, cert.not_after, cert.is_active, utcnow())
    updated_at = cert.updated_at.astimezone(UTC).isoformat()
    state = f"{cert.id}|{updated_at}|{status.value}|{variant}"
    return '"' + hashlib.sha256(state.encode()).hexdigest()[:32] + '"'


@router.get(
    "/{certificate_id}",
    response_model=CertificateOut,
    summary="Fetch a certificate",
    responses={
        200: {
            "content": {PEM_CHAIN: {"example": "-----BEGIN CERTIFICATE-----\n..."}},
            "description": "JSON, or the PEM leaf and chain with "
            "`Accept: application/pem-certificate-chain`",
        },
        304: {"description": "not modified since the ETag given in If-None-Match"},
        **problems(401, 404, 422),
    },
)
async def get_certificate(
    certificate_id: uuid.UUID,
    request: Request,
    runtime: RuntimeDep,
    caller: Caller,
) -> Response:
    """The certificate as JSON, or as PEM (leaf then chain). Carries an ETag."""
    cert, _actor = await certificates.visible_to(runtime.db, certificate_id, caller)
    wants_pem = PEM_CHAIN in request.headers.get("accept", "")
    etag = _etag(cert, "pem" if wants_pem else "json")
    headers = {"ETag": etag, "Cache-Control": "private, no-cache", "Vary": "Accept"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if wants_pem:
        return Response(
            cert.certificate_pem + runtime.authorities.chain_pem(cert.issuer_id),
            media_type=PEM_CHAIN,
            headers=headers,
        )
    return Response(
        to_json(shape(cert, runtime.authorities.chain_pem(cert.issuer_id))),
        media_type="application/json",
        headers=headers,
    )


@router.get(
    "", response_model=CertificatePage, summary="List certificates", responses=problems(401, 422)
)
async def list_certificates(
    runtime: RuntimeDep, caller: Caller, query: Annotated[ListQuery, Query()]
) -> Response:
    """Your certificates (admins: anyone's), newest first, a page at a time; `expires_before`
    keeps those whose notAfter is earlier."""
    status = Status(query.status) if query.status else None
    expires_before = query.expires_before.astimezone(UTC) if query.expires_before else None
    wanted = ListFilter(query.account_id, query.active, status, expires_before)
    rows, next_cursor = await certificates.list_page(
        runtime.db, caller, wanted, query.cursor, query.limit
    )
    items = [shape(c, runtime.authorities.chain_pem(c.issuer_id)) for c in rows]
    return reply({"items": items, "next_cursor": next_cursor})


@router.patch(
    "/{certificate_id}",
    response_model=CertificateOut,
    summary="Hold or release a certificate",
    responses=problems(400, 401, 403, 404, 408, 409, 413, 415, 422),
)
async def update_certificate(
    certificate_id: uuid.UUID,
    body: CertificateUpdate,
    runtime: RuntimeDep,
    caller: Caller,
) -> Response:
    """`is_active: false` holds it (CRL/OCSP say certificateHold); `true` releases it.
    A hold placed by an admin is lifted only by an admin (403 for the owner)."""
    result = await holds.set_active(runtime.db, certificate_id, caller, body.is_active)
    cert = result.certificate
    return reply(shape(cert, runtime.authorities.chain_pem(cert.issuer_id)))


@router.post(
    "/{certificate_id}/revoke",
    response_model=CertificateOut,
    summary="Revoke a certificate for good",
    responses=problems(400, 401, 404, 408, 409, 413, 415, 422),
)
async def revoke_certificate(
    certificate_id: uuid.UUID,
    body: RevokeRequest,
    runtime: RuntimeDep,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Permanent revocation with an RFC 5280 reason; it shows on the next CRL and in OCSP.
    `keyCompromise` destroys a stored key and blocks the public key for the certificate's
    owner, or for every account with a `key_proof` (or when the service made the key)."""
    fields: dict[str, str] = {"id": str(certificate_id), "reason": body.reason}
    if body.key_proof is not None:  # absent, the request hash stays what it always was
        fields["key_proof"] = body.key_proof
    ttl = timedelta(hours=runtime.settings.idempotency_ttl_hours)
    idem = Idempotency.of(idempotency_key, fields, ttl)
    asked = revocation.Revocation(body.reason, key_proof=body.key_proof)
    result = await revocation.revoke(runtime.db, certificate_id, caller, asked, idem)
    cert = result.certificate
    return reply(shape(cert, runtime.authorities.chain_pem(cert.issuer_id)))


@router.get(
    "/{certificate_id}/private-key",
    summary="Download the private key",
    response_class=Response,
    responses={
        200: {"content": {"application/x-pem-file": {}}},
        **problems(401, 403, 404, 410, 422),
    },
)
async def get_private_key(
    certificate_id: uuid.UUID, runtime: RuntimeDep, caller: Caller
) -> Response:
    """The PKCS#8 key the service made, to its owner only; 410 once destroyed or for a CSR.
    An admin learns whether a key is still held (410 when not) but cannot download it (403)."""
    pem = await private_keys.private_key(runtime.db, runtime.keyring, certificate_id, caller)
    return Response(pem, media_type="application/x-pem-file", headers={"Cache-Control": "no-store"})
