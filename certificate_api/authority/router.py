"""Public CA routes: the chain, and the issuer certificate named in issued certificates' AIA."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter
from fastapi.responses import Response

from certificate_api.deps import RuntimeDep

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
