"""Public CA routes: the chain, and the issuer certificate named in issued certificates' AIA."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter
from fastapi.responses import Response

from certificate_api.deps import RuntimeDep, SessionDep
from certificate_api.errors import problems
from core.errors import NotFound

router = APIRouter(prefix="/api/ca", tags=["certificate authority"])


@router.get(
    "/certificates",
    summary="The CA chain (PEM)",
    response_class=Response,
    responses={
        200: {
            "content": {"application/pem-certificate-chain": {}},
            "description": "issuing intermediate first, root last",
        }
    },
)
def ca_certificates(runtime: RuntimeDep) -> Response:
    """The issuing intermediate then the root, PEM. Trust the root; send the intermediate."""
    return Response(
        runtime.ca.chain_pem,
        media_type="application/pem-certificate-chain",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@router.get(
    "/issuer.cer",
    summary="The issuing CA certificate (DER)",
    response_class=Response,
    responses={200: {"content": {"application/pkix-cert": {}}}},
)
def issuer_certificate(runtime: RuntimeDep) -> Response:
    """The intermediate in DER, where issued certificates' AIA caIssuers points."""
    der = runtime.ca.certificate.public_bytes(serialization.Encoding.DER)
    return Response(
        der, media_type="application/pkix-cert", headers={"Cache-Control": "public, max-age=3600"}
    )


@router.get(
    "/issuer/{serial}.cer",
    summary="A CA certificate by its serial (DER)",
    response_class=Response,
    responses={200: {"content": {"application/pkix-cert": {}}}, **problems(404)},
)
def ca_certificate(serial: str, runtime: RuntimeDep, session: SessionDep) -> Response:
    """An intermediate (named in its leaves' AIA caIssuers) or a root (named in its
    intermediates'), in DER. Serial in lowercase hex."""
    authorities = runtime.authorities
    serial = serial.lower()
    if authorities.by_serial(serial) is None and serial not in authorities.roots:
        authorities.refresh_soon(session)
    intermediate = authorities.by_serial(serial)
    der = (
        intermediate.certificate.public_bytes(serialization.Encoding.DER)
        if intermediate is not None
        else authorities.roots.get(serial)
    )
    if der is None:
        raise NotFound(f"no CA certificate with serial {serial[:40]!r} here")
    return Response(
        der, media_type="application/pkix-cert", headers={"Cache-Control": "public, max-age=3600"}
    )
