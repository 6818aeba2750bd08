"""The certificate service: FastAPI app factory and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from certificate_api import health
from certificate_api.acme import errors as acme_errors
from certificate_api.acme.eab import router as eab_router
from certificate_api.acme.edge import AcmeEdge
from certificate_api.acme.router import router as acme_router
from certificate_api.authority.router import router as ca_router
from certificate_api.certificates.router import router as certificates_router
from certificate_api.domains.router import router as domains_router
from certificate_api.errors import register_error_handlers
from certificate_api.middleware import EdgeMiddleware
from certificate_api.renewal.router import router as renewal_router
from certificate_api.revocation.router import router as revocation_router
from certificate_api.runtime import build_runtime
from certificate_api.settings import CertificateSettings
from schema.logs import configure_logging

DESCRIPTION = """
A two-level certificate authority. Sign up and get a token from the account service,
then press **Authorize** (OAuth2 password flow: your email and password) to issue,
fetch, list, hold and revoke certificates here. Relying parties check status through
the CRL and OCSP routes, which need no token. A token stops working here at once when
its account signs out everywhere, changes its password or is deleted.
"""


def create_app(settings: CertificateSettings | None = None) -> FastAPI:
    """Build the certificate service; tests pass their own settings."""
    settings = settings or CertificateSettings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await build_runtime(settings)
        app.state.runtime = runtime
        # As many request threads as database connections: a thread never waits for one.
        threads = settings.request_threads or settings.db_pool_size + settings.db_max_overflow
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPIOffline(
        title="Tessera certificates",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
        swagger_ui_parameters={"persistAuthorization": True},
    )
    register_error_handlers(app)
    acme_errors.register(app)
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_in_flight=settings.max_in_flight,
        body_timeout=settings.body_timeout_seconds,
    )
    app.add_middleware(AcmeEdge)  # outermost: the edge's own refusals get a nonce too
    app.include_router(certificates_router)
    app.include_router(renewal_router)
    app.include_router(domains_router)
    app.include_router(ca_router)
    app.include_router(revocation_router)
    # Probes before ACME's sixteen routes: FastAPI tries routes in order (~1.5 µs each),
    # and /healthz after them cost 25 µs more a request (measured in process).
    app.include_router(health.router)
    app.include_router(eab_router)
    app.include_router(acme_router)
    _docs_login_via_account_service(app, settings)
    return app


def _docs_login_via_account_service(app: FastAPI, settings: CertificateSettings) -> None:
    """/docs "Authorize" logs in at the account service (OAuth2 password flow)."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            flows = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
            flows["password"]["tokenUrl"] = f"{settings.account_api_url}/api/auth/token"
        return app.openapi_schema or original()

    app.openapi = openapi  # type: ignore[method-assign]
