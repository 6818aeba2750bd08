"""Who is calling: the bearer token, verified, naming a live account."""

from __future__ import annotations

from typing import Any

from flask import request

from account_api.accounts import service
from account_api.errors import Unauthorized
from account_api.extensions import session
from account_api.runtime import runtime
from schema.accounts import Account
from schema.tokens import InvalidToken, verify_access_token

BEARER_SECURITY: list[dict[str, list[Any]]] = [{"bearerAuth": []}, {"oauth2": []}]


def current_account() -> Account:
    """The account of the request's bearer token; 401 otherwise."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized()
    rt = runtime()
    try:
        claims = verify_access_token(
            token.strip(), rt.verify_key, rt.settings.token_issuer, rt.settings.token_audience
        )
    except InvalidToken:
        raise Unauthorized() from None
    return service.account_for_token(session(), claims)
