"""Minting access tokens: EdDSA, so the certificate service can verify but never mint."""

from __future__ import annotations

import uuid
from datetime import timedelta

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from schema.base import utcnow
from schema.tokens import ALGORITHM, GENERATION_CLAIM


class TokenMinter:
    """Signs short-lived access tokens with the account service's private key."""

    def __init__(self, private_key_pem: bytes, issuer: str, audience: str, ttl_seconds: int):
        key = load_pem_private_key(private_key_pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the token signing key must be an Ed25519 private key")
        self._key = key
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    @property
    def verify_key(self) -> Ed25519PublicKey:
        """The public half: what this service checks its own tokens with. Derived, never
        configured separately, so the two cannot disagree."""
        return self._key.public_key()

    def mint(self, account_id: uuid.UUID, generation: int) -> str:
        """A signed token naming the account and its current token generation."""
        now = utcnow()
        claims = {
            "sub": str(account_id),
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "nbf": now - timedelta(seconds=5),
            "exp": now + timedelta(seconds=self.ttl_seconds),
            "jti": uuid.uuid4().hex,
            GENERATION_CLAIM: generation,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)
