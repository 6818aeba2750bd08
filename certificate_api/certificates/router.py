"""HTTP routes of certificates: parse, call the service, shape the reply."""

from __future__ import annotations

import functools
import hashlib
import uuid
from datetime import UTC, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response

from certificate_api import limits
from certificate_api.certificates import idempotency, issuance, service
from certificate_api.certificates.schemas import (
    CertificateCreate,
    CertificateCreated,
    CertificateOut,
    CertificatePage,
    CertificateUpdate,
    RevokeRequest,
    StatusName,
)
from certificate_api.deps import Caller, RuntimeDep
from certificate_api.errors import Forbidden, Gone, problems
from schema.base import utcnow
from schema.certificates import CertificateFields, Status, status_of
from schema.events import wake_workers

router = APIRouter(prefix="/api/certificates", tags=["certificates"])
PEM_CHAIN = "application/pem-certificate-chain"
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key", max_length=255, description="retry safely: same key, same result"
    ),
]


def shape(cert: CertificateFields, chain_pem: str) -> dict[str, Any]:
    """The contract's certificate object, from an ORM object or a row with the certificate's
    columns. Ids and times stay objects: `reply` writes them (RFC 3339 in UTC, to the second,
    as the contract shows: `2026-11-23T18:41:30Z`)."""
    return {
        "id": cert.id,
        "account_id": cert.account_id,
        "serial_number": cert.serial_number,
        "common_name": cert.common_name,  # type: ignore[attr-defined]
        "dns_names": cert.dns_names,  # type: ignore[attr-defined]
        "ip_addresses": cert.ip_addresses,  # type: ignore[attr-defined]
        "key_type": cert.key_type,  # type: ignore[attr-defined]
        "is_active": cert.is_active,
        "status": status_of(cert.revoked_at, cert.not_after, cert.is_active, utcnow()).value,
        "revocation_reason": cert.revocation_reason,
        "not_before": cert.not_before,  # type: ignore[attr-defined]
        "not_after": cert.not_after,
        "certificate_pem": cert.certificate_pem,  # type: ignore[attr-defined]
        "chain_pem": chain_pem,
        "has_private_key": cert.has_private_key,  # type: ignore[attr-defined]
        "created_at": cert.created_at,  # type: ignore[attr-defined]
        "updated_at": cert.updated_at,  # type: ignore[attr-defined]
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
    responses=problems(400, 401, 408, 413, 415, 422, 429, 503),
)
async def issue_certificate(
    body: CertificateCreate,
    runtime: RuntimeDep,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Issue for the calling account. Without `csr` the service makes the key pair and this
    reply (only this one) carries `private_key_pem`; with `csr` the key stays with you."""
    settings = runtime.settings
    db = runtime.db
    ttl = timedelta(hours=settings.idempotency_ttl_hours)
    account_id = caller.account_id
    # Checked before anything else (a deleted account's token is 401 whatever the body);
    # storing checks again under a lock, for an account deleted while this request signs.
    await limits.authorize_issuance(db, caller, settings.issuance_rate_per_minute)
    fingerprint = ""
    cert: Any = None
    if idempotency_key is not None:
        fingerprint = idempotency.request_fingerprint(body.model_dump())
        cert = await idempotency.replay(db, account_id, "issue", idempotency_key, fingerprint, ttl)
    key_pem: str | None = None
    if cert is None:
        order = issuance.prepare(
            body.common_name,
            body.dns_names,
            body.ip_addresses,
            body.key_type,
            body.validity_days,
            body.csr,
            body.is_active,
            settings.default_validity_days,
            settings.max_validity_days,
        )
        # Signing takes a fraction of a millisecond, on this loop; making an RSA key does
        # not, so when the pool has none ready it is made in a thread.
        sign = functools.partial(
            issuance.sign, order, runtime.ca, settings.public_base_url, runtime.key_pool
        )
        if issuance.makes_slow_key(order, runtime.key_pool):
            issued = await runtime.slow_keys.run(sign)
        else:
            issued = sign()
        cert, new = await service.store_issued(
            db, runtime.keyring, account_id, order, issued, idempotency_key, fingerprint, ttl
        )
        if new:
            wake_workers(runtime.engine)
            if issued.private_key_pem is not None:
                key_pem = issued.private_key_pem.decode()
    if key_pem is None and cert.has_private_key:
        # A replay: the same key as the first reply, unsealed from its row.
        key_pem = await service.private_key_pem(db, runtime.keyring, cert.id)
    created = shape(cert, runtime.ca.chain_pem)
    created["private_key_pem"] = key_pem
    return reply(created, 201, Location=f"/api/certificates/{cert.id}")


def _etag(cert: CertificateFields, variant: str) -> str:
    status = status_of(cert.revoked_at, cert.not_after, cert.is_active, utcnow())
    updated_at = cert.updated_at.astimezone(UTC).isoformat()  # type: ignore[attr-defined]
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
    cert, _actor = await service.visible_to(runtime.db, certificate_id, caller)
    wants_pem = PEM_CHAIN in request.headers.get("accept", "")
    etag = _etag(cert, "pem" if wants_pem else "json")
    headers = {"ETag": etag, "Cache-Control": "private, no-cache", "Vary": "Accept"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if wants_pem:
        return Response(
            cert.certificate_pem + runtime.ca.chain_pem, media_type=PEM_CHAIN, headers=headers
        )
    return Response(
        to_json(shape(cert, runtime.ca.chain_pem)),
        media_type="application/json",
        headers=headers,
    )


@router.get(
    "", response_model=CertificatePage, summary="List certificates", responses=problems(401, 422)
)
async def list_certificates(
    runtime: RuntimeDep,
    caller: Caller,
    active: Annotated[bool | None, Query(description="only active (true) or not active")] = None,
    status: Annotated[StatusName | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    account_id: Annotated[uuid.UUID | None, Query(description="admins: one account")] = None,
) -> Response:
    """Your certificates (admins: anyone's), newest first, a page at a time."""
    actor = await service.authorize(runtime.db, caller)
    rows, next_cursor = await service.list_page(
        runtime.db, actor, account_id, active, Status(status) if status else None, cursor, limit
    )
    items = [shape(c, runtime.ca.chain_pem) for c in rows]
    return reply({"items": items, "next_cursor": next_cursor})


@router.patch(
    "/{certificate_id}",
    response_model=CertificateOut,
    summary="Hold or release a certificate",
    responses=problems(400, 401, 404, 408, 409, 413, 415, 422),
)
async def update_certificate(
    certificate_id: uuid.UUID,
    body: CertificateUpdate,
    runtime: RuntimeDep,
    caller: Caller,
) -> Response:
    """`is_active: false` holds it (CRL/OCSP say certificateHold); `true` releases it."""
    cert, changed = await service.set_active(runtime.db, certificate_id, caller, body.is_active)
    if changed:
        wake_workers(runtime.engine)
    return reply(shape(cert, runtime.ca.chain_pem))


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
    """Permanent revocation with an RFC 5280 reason; it shows on the next CRL and in OCSP."""
    fingerprint = ""
    if idempotency_key is not None:
        fingerprint = idempotency.request_fingerprint(
            {"id": str(certificate_id), **body.model_dump()}
        )
    ttl = timedelta(hours=runtime.settings.idempotency_ttl_hours)
    cert, changed = await service.revoke(
        runtime.db, certificate_id, caller, body.reason, idempotency_key, fingerprint, ttl
    )
    if changed:
        wake_workers(runtime.engine)
    return reply(shape(cert, runtime.ca.chain_pem))


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
    cert, actor = await service.visible_to(runtime.db, certificate_id, caller)
    if not cert.has_private_key:
        raise Gone("the private key was destroyed or never held (CSR)")
    if cert.account_id != actor.id:
        raise Forbidden("only the certificate's owner can download its private key")
    pem = await service.private_key_pem(runtime.db, runtime.keyring, cert.id)
    if pem is None:  # destroyed since the certificate was read
        raise Gone("the private key was destroyed or never held (CSR)")
    return Response(pem, media_type="application/x-pem-file", headers={"Cache-Control": "no-store"})
