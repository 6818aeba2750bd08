"""Stored private keys: unsealed for their owner only."""

from __future__ import annotations

import uuid

from certificate_api.pki.sealing import Keyring, SealedKey, unseal
from core import queries
from core.certificates import visible_to
from core.errors import Forbidden, Gone
from core.statements import Database
from schema.tokens import TokenClaims


async def private_key(
    db: Database, keyring: Keyring, certificate_id: uuid.UUID, caller: TokenClaims
) -> str:
    """The stored private key of a certificate, unsealed, for its owner only. Gone when it
    was destroyed or never held (a CSR); an admin learns that much, but may not download it."""
    cert, actor = await visible_to(db, certificate_id, caller)
    if not cert.has_private_key:
        raise Gone("the private key was destroyed or never held (CSR)")
    if cert.account_id != actor.id:
        raise Forbidden("only the certificate's owner can download its private key")
    pem = await private_key_pem(db, keyring, cert.id)
    if pem is None:  # destroyed since the certificate was read
        raise Gone("the private key was destroyed or never held (CSR)")
    return pem


async def private_key_pem(db: Database, keyring: Keyring, certificate_id: uuid.UUID) -> str | None:
    """The certificate's private key, unsealed, or None when not held."""
    row = await db.one(queries.SEALED_KEY, certificate_id=certificate_id)
    if row is None:
        return None
    sealed = SealedKey(row.key_id, row.nonce, row.ciphertext)
    return unseal(keyring, sealed, certificate_id.bytes).decode()
