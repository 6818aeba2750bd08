"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

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


def get_runtime(request: Request) -> Runtime:
    """The app's shared state."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    """One session per request, closed (and rolled back if uncommitted) afterwards."""
    with runtime.sessions() as session:
        yield session


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
