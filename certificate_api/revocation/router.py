"""Relying parties' routes: the CRL and the OCSP responder. No token needed."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import timedelta
from email.utils import format_datetime
from typing import Annotated, Any
from urllib.parse import unquote

from cryptography.x509 import ocsp
from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from certificate_api.deps import RuntimeDep, SessionDep
from certificate_api.errors import PROBLEM, BadRequest, ServiceUnavailable, problems
from certificate_api.pki import revocation as pki
from certificate_api.pki.ca import serial_hex
from certificate_api.revocation import root, service
from certificate_api.runtime import Runtime
from core.errors import NotFound

router = APIRouter(tags=["revocation"])
OCSP_RESPONSE = "application/ocsp-response"
# Holds are reversible, so no relying party should keep an answer longer than it is valid.
NO_CACHE = "no-cache, max-age=0"


@router.get(
    "/api/ca/crl",
    summary="The certificate revocation list (DER)",
    response_class=Response,
    responses={
        200: {
            "content": {"application/pkix-crl": {}},
            "description": "every hold and revocation committed at least "
            "CRL_REFRESH_SECONDS before the request",
        },
        304: {"description": "the CRL named by If-None-Match is still current"},
    },
)
def get_crl(
    runtime: RuntimeDep,
    session: SessionDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """A complete CRL signed by the current issuing CA: held certificates carry
    `certificateHold`, revoked ones their reason. Rebuilt only when a hold or revocation
    changed, at most once per `CRL_REFRESH_SECONDS` (see docs); OCSP is always current.
    Leaves of older intermediates name their own CRL."""
    validity = timedelta(hours=runtime.settings.crl_validity_hours)
    refresh = timedelta(seconds=runtime.settings.crl_refresh_seconds)
    crl = service.current_crl(session, runtime.ca, runtime.crl_cache, validity, refresh)
    return _crl_response(crl, if_none_match)


@router.get(
    "/api/ca/crl/{serial}",
    summary="The CRL of one CA, by its serial (DER)",
    response_class=Response,
    responses={
        200: {
            "content": {"application/pkix-crl": {}},
            "description": "an intermediate's CRL (its leaves), or a root's (its intermediates)",
        },
        304: {"description": "the CRL named by If-None-Match is still current"},
        **problems(404, 503),
    },
)
def get_crl_of(
    serial: str,
    runtime: RuntimeDep,
    session: SessionDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The CRL named in a certificate's CRL distribution point: each leaf names its own
    intermediate's, each intermediate its root's. Serial in lowercase hex."""
    authorities = runtime.authorities
    serial = serial.lower()
    if authorities.by_serial(serial) is None and serial not in authorities.roots:
        authorities.refresh_soon(session)  # rotated since this process last looked?
    intermediate = authorities.by_serial(serial)
    if intermediate is not None:
        validity = timedelta(hours=runtime.settings.crl_validity_hours)
        refresh = timedelta(seconds=runtime.settings.crl_refresh_seconds)
        crl = service.current_crl(session, intermediate, runtime.crl_cache, validity, refresh)
        return _crl_response(crl, if_none_match)
    root_id = authorities.root_ids.get(serial)
    if root_id is None:
        raise NotFound(f"no CA with serial {serial[:40]!r} publishes a CRL here")
    return _root_crl_response(runtime, session, root_id, if_none_match)


@router.get(
    "/api/ca/root.crl",
    summary="The root's CRL: revoked intermediates (DER)",
    response_class=Response,
    responses={
        200: {"content": {"application/pkix-crl": {}}},
        304: {"description": "the CRL named by If-None-Match is still current"},
        **problems(503),
    },
)
def get_root_crl(
    runtime: RuntimeDep,
    session: SessionDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The current root's CRL, signed by the root: every intermediate revoked with
    `ca-admin revoke-intermediate`."""
    root_id = runtime.authorities.root_ids.get(serial_hex(runtime.ca.root_certificate))
    if root_id is None:
        raise ServiceUnavailable("the root of the issuing CA is not known to this process yet")
    return _root_crl_response(runtime, session, root_id, if_none_match)


def _root_crl_response(
    runtime: Runtime, session: Session, root_id: uuid.UUID, if_none_match: str | None
) -> Response:
    validity = timedelta(days=runtime.settings.root_crl_validity_days)
    crl = root.root_crl(session, runtime.keyring, root_id, validity)
    if crl is None:
        raise ServiceUnavailable(
            "the root CRL has not been signed yet: the root's key is offline "
            "(ca-admin sign-root-crl --root-key FILE)"
        )
    return _crl_response(crl, if_none_match)


def _crl_response(crl: service.Crl, if_none_match: str | None) -> Response:
    headers = {
        "ETag": f'"crl-{crl.number}"',
        "Last-Modified": format_datetime(crl.this_update, usegmt=True),
        "Cache-Control": NO_CACHE,
    }
    if if_none_match is not None and headers["ETag"] in if_none_match:
        return Response(status_code=304, headers=headers)
    return Response(crl.der, media_type="application/pkix-crl", headers=headers)


async def _answer(runtime: Runtime, der: bytes) -> Response:
    body = await service.ocsp_response(
        runtime.db, runtime.sessions, runtime.authorities, runtime.responder, der
    )
    return Response(body, media_type=OCSP_RESPONSE, headers={"Cache-Control": NO_CACHE})


OCSP_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {OCSP_RESPONSE: {}},
        "description": "an OCSP response; errors such as malformedRequest are OCSP statuses",
    }
}
_NO_OCSP_REQUEST = "an OCSP request (DER, application/ocsp-request) is required in the body"


@router.post(
    "/api/ocsp",
    summary="OCSP (RFC 6960), request in the body",
    response_class=Response,
    responses={
        **OCSP_DOC,
        **problems(408, 413),
        400: {
            "description": _NO_OCSP_REQUEST,
            "content": {PROBLEM: {"schema": problems(400)[400]["content"][PROBLEM]["schema"]}},
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/ocsp-request": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def ocsp_post(request: Request, runtime: RuntimeDep) -> Response:
    """Send a DER `OCSPRequest` as `application/ocsp-request`; the answer is good, revoked
    (holds say `certificateHold`) or unknown, signed by the delegated responder."""
    der = await request.body()
    if not der:  # nothing to answer, not even malformedRequest: that is for a bad request
        raise BadRequest(_NO_OCSP_REQUEST)
    return await _answer(runtime, der)


@router.get(
    "/api/ocsp/{encoded:path}",
    summary="OCSP (RFC 6960), request base64 in the path",
    response_class=Response,
    responses={
        **OCSP_DOC,
        **problems(404),
        404: {**problems(404)[404], "description": "the path holds characters no request has"},
    },
)
async def ocsp_get(encoded: str, runtime: RuntimeDep) -> Response:
    """The GET form: the DER request, base64 and then URL-encoded, as the last path segment."""
    text = unquote(encoded).strip()
    altchars = b"-_" if "-" in text or "_" in text else None  # tolerate base64url too
    try:
        der = base64.b64decode(text + "=" * (-len(text) % 4), altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        return Response(
            pki.refuse(ocsp.OCSPResponseStatus.MALFORMED_REQUEST),
            media_type=OCSP_RESPONSE,
            headers={"Cache-Control": NO_CACHE},
        )
    return await _answer(runtime, der)
