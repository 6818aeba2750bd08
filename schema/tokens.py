"""Access-token verification, the same rules in both services (public key only)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

ALGORITHM = "EdDSA"
# The private claim naming the account's token generation (see Account.token_generation).
GENERATION_CLAIM = "gen"


class InvalidToken(Exception):
    """The token is missing, expired, tampered, unsigned or for someone else."""


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says: whose it is, and of which of its generations."""

    account_id: uuid.UUID
    token_id: str
    expires_at: float  # Unix seconds
    generation: int = 0  # the account's token_generation when it was minted

    def is_current(self, token_generation: int) -> bool:
        """Whether the account has not signed out (or changed its password) since minting."""
        return self.generation >= token_generation


def load_verify_key(public_key_pem: bytes) -> Ed25519PublicKey:
    """The public key, parsed once (PyJWT would parse a PEM on every call)."""
    key = load_pem_public_key(public_key_pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the token verification key must be an Ed25519 public key")
    return key


def verify_access_token(
    token: str, public_key: Ed25519PublicKey | bytes, issuer: str, audience: str
) -> TokenClaims:
    """Check signature, algorithm, expiry, issuer and audience; return the subject."""
    try:
        # Only EdDSA is accepted: `alg=none` and HS256-with-public-key tricks fail here.
        claims = jwt.decode(
            token,
            public_key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            audience=audience,
            options={"require": ["exp", "iat", "sub", "jti"]},
        )
        return TokenClaims(
            account_id=uuid.UUID(claims["sub"]),
            token_id=str(claims["jti"]),
            expires_at=float(claims["exp"]),
            generation=_generation(claims.get(GENERATION_CLAIM, 0)),
        )
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise InvalidToken(str(exc)) from exc


def _generation(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("the token generation must be a non-negative integer")
    return value


class VerifiedTokens:
    """Tokens whose signature already checked out, remembered until they expire.

    The same token string always verifies the same way, so a repeat skips only the
    signature check; expiry is checked again on every use. Bounded, least recently used
    out first. Whether the account still exists is never cached: callers check that.
    """

    def __init__(self, verify: Callable[[str], TokenClaims], max_entries: int = 10_000) -> None:
        self.verify = verify
        self.max_entries = max_entries
        self.known: OrderedDict[str, TokenClaims] = OrderedDict()
        self.lock = threading.Lock()

    def claims(self, token: str) -> TokenClaims:
        """The token's claims, or InvalidToken."""
        with self.lock:
            known = self.known.get(token)
            if known is not None:
                self.known.move_to_end(token)
        if known is not None:
            if known.expires_at > time.time():
                return known
            raise InvalidToken("the token has expired")
        claims = self.verify(token)
        with self.lock:
            self.known[token] = claims
            if len(self.known) > self.max_entries:
                self.known.popitem(last=False)
        return claims
