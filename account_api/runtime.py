"""What a request of the account service needs besides the database: built once per app."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import current_app, g, request

from account_api.auth.passwords import Passwords
from account_api.auth.tokens import TokenMinter
from account_api.settings import AccountSettings
from schema.clients import client_address


@dataclass(frozen=True)
class Runtime:
    """Settings, the password hasher and the token keys of one app."""

    settings: AccountSettings
    passwords: Passwords
    minter: TokenMinter
    verify_key: Ed25519PublicKey


def runtime() -> Runtime:
    """The current app's runtime."""
    value: Runtime = current_app.extensions["tessera"]
    return value


def client() -> str:
    """The request's client address: the peer, or what a trusted proxy says (TRUSTED_PROXIES)."""
    known: str | None = g.get("client_address")
    if known is None:
        known = client_address(
            request.remote_addr,
            request.headers.getlist("X-Forwarded-For"),
            runtime().settings.trusted_proxies,
        )
        g.client_address = known
    return known
