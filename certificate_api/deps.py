"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from certificate_api.certificates.service import Actor
from certificate_api.errors import Unauthorized
from certificate_api.runtime import Runtime
from schema.accounts import Account
from schema.tokens import InvalidToken, verify_access_token

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


def get_actor(
    runtime: RuntimeDep, session: SessionDep, token: Annotated[str | None, Depends(bearer)]
) -> Actor:
    """The live account of the bearer token; 401 otherwise (deleted accounts included)."""
    if not token:
        raise Unauthorized()
    settings = runtime.settings
    try:
        claims = verify_access_token(
            token, runtime.verify_key, settings.token_issuer, settings.token_audience
        )
    except InvalidToken:
        raise Unauthorized() from None
    account = session.get(Account, claims.account_id)
    # Give the connection back while the route waits for its thread: a request never holds
    # a pooled connection it is not using, so a pool smaller than the thread pool cannot stall.
    session.rollback()
    if account is None or account.deleted_at is not None:
        raise Unauthorized()
    return Actor.of(account)


CurrentActor = Annotated[Actor, Depends(get_actor)]
