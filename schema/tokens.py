"""Access-token verification, the same rules in both services (public key only)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import jwt

ALGORITHM = "EdDSA"


class InvalidToken(Exception):
    """The token is missing, expired, tampered, unsigned or for someone else."""


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says: whose it is."""

    account_id: uuid.UUID
    token_id: str


def verify_access_token(
    token: str, public_key_pem: bytes, issuer: str, audience: str
) -> TokenClaims:
    """Check signature, algorithm, expiry, issuer and audience; return the subject."""
    try:
        # Only EdDSA is accepted: `alg=none` and HS256-with-public-key tricks fail here.
        claims = jwt.decode(
            token,
            public_key_pem,
            algorithms=[ALGORITHM],
            issuer=issuer,
            audience=audience,
            options={"require": ["exp", "iat", "sub", "jti"]},
        )
        return TokenClaims(account_id=uuid.UUID(claims["sub"]), token_id=str(claims["jti"]))
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise InvalidToken(str(exc)) from exc
