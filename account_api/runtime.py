"""What a request of the account service needs besides the database: built once per app."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import current_app

from account_api.auth.passwords import Passwords
from account_api.auth.tokens import TokenMinter
from account_api.settings import AccountSettings


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
