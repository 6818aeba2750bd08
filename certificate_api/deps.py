"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from certificate_api.runtime import Runtime
from core.errors import Unauthorized
from schema.tokens import InvalidToken, TokenClaims

# The token URL is the account service's: /docs "Authorize" logs in there (CORS allows it).
# It is set per app in create_app; this scheme only extracts the bearer token.
bearer = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


async def get_runtime(request: Request) -> Runtime:
    """The app's shared state (async: no thread hop for a dict lookup)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
# Closing sessions gets threads of its own: if it queued behind requests that wait for a
# database connection, the connections it would give back never come back (a stall).
_CLOSING = anyio.CapacityLimiter(8)


async def get_session(runtime: RuntimeDep) -> AsyncIterator[Session]:
    """One session per request, closed (and rolled back if uncommitted) afterwards.

    Opening one does no I/O, so it happens here on the event loop; closing one that still
    holds a connection does, so it runs in a thread from a small pool reserved for it.
    """
    session = runtime.sessions()
    try:
        yield session
    finally:
        if session.in_transaction():
            await anyio.to_thread.run_sync(session.close, limiter=_CLOSING)
        else:
            session.close()


SessionDep = Annotated[Session, Depends(get_session)]


async def get_caller(
    runtime: RuntimeDep, token: Annotated[str | None, Depends(bearer)]
) -> TokenClaims:
    """The verified claims of the bearer token; 401 otherwise.

    Only the signature and claims are checked here (no I/O, so on the event loop); that the
    account still exists is checked by the core, in the operation's own queries
    (`core.actors`): one database connection per request, held only while it is used.
    """
    if not token:
        raise Unauthorized()
    try:
        return runtime.tokens.claims(token)
    except InvalidToken:
        raise Unauthorized() from None


Caller = Annotated[TokenClaims, Depends(get_caller)]
