"""`POST /api/acme/eab`: a customer makes an external account binding key for its ACME
client (certbot's `--eab-kid/--eab-hmac-key`, lego's `--eab --kid --hmac`, cert-manager's
`externalAccountBinding`)."""

from __future__ import annotations

from datetime import datetime, timedelta

import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from certificate_api.certificates.router import reply
from certificate_api.deps import Caller, RuntimeDep
from certificate_api.errors import problems
from core.acme import accounts

router = APIRouter(prefix="/api/acme", tags=["acme"])


class EabOut(BaseModel):
    """An external account binding key, shown once."""

    key_id: str = Field(description="the client's EAB key id (`kid`)")
    hmac_key: str = Field(description="32 random bytes, base64url without padding")
    expires_at: datetime = Field(description="unused after this, the key is refused")


@router.post(
    "/eab",
    status_code=201,
    response_model=EabOut,
    summary="Make an ACME external account binding key",
    responses=problems(401),
)
async def make_eab(runtime: RuntimeDep, caller: Caller) -> Response:
    """A key for registering one ACME account that acts for you (its certificates are
    yours, your domain authorizations cover its orders). Good once, for
    `ACME_EAB_TTL_HOURS`. The HMAC key is shown only here; it is stored encrypted."""
    ttl = timedelta(hours=runtime.settings.acme_eab_ttl_hours)

    def make() -> accounts.EabKey:
        with runtime.sessions() as session:
            return accounts.make_eab_key(session, runtime.keyring, caller, ttl)

    made = await anyio.to_thread.run_sync(make)
    return reply(
        {"key_id": made.key_id, "hmac_key": made.hmac_key, "expires_at": made.expires_at}, 201
    )
