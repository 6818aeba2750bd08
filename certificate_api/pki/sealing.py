"""Private keys at rest: AES-256-GCM under a master key that has an id, bound to their row."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class SealError(Exception):
    """A sealed key could not be opened: wrong key id, wrong row, or tampered bytes."""


@dataclass(frozen=True)
class MasterKey:
    """A 256-bit key and the id stored beside everything it seals."""

    key_id: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != 32:
            raise ValueError("a master key is 32 bytes")


@dataclass(frozen=True)
class Keyring:
    """The current master key, which seals, and older ones, which only open."""

    current: MasterKey
    previous: tuple[MasterKey, ...] = ()

    def get(self, key_id: str) -> MasterKey:
        """The key with this id."""
        for key in (self.current, *self.previous):
            if key.key_id == key_id:
                return key
        raise SealError(f"unknown master key id {key_id!r}")


@dataclass(frozen=True)
class SealedKey:
    """What is stored: which master key, the nonce, ciphertext and tag."""

    key_id: str
    nonce: bytes
    ciphertext: bytes


def seal(keyring: Keyring, plaintext: bytes, associated_data: bytes) -> SealedKey:
    """Encrypt under the current master key; the associated data (the row id) must match to open."""
    nonce = os.urandom(12)
    ciphertext = AESGCM(keyring.current.key).encrypt(nonce, plaintext, associated_data)
    return SealedKey(keyring.current.key_id, nonce, ciphertext)


def unseal(keyring: Keyring, sealed: SealedKey, associated_data: bytes) -> bytes:
    """Decrypt, checking the tag and the associated data."""
    key = keyring.get(sealed.key_id)
    try:
        return AESGCM(key.key).decrypt(sealed.nonce, sealed.ciphertext, associated_data)
    except InvalidTag:
        raise SealError("sealed key does not open: tampered, or moved to another row") from None


def reseal(keyring: Keyring, sealed: SealedKey, associated_data: bytes) -> SealedKey:
    """Re-encrypt under the current master key (rotation)."""
    return seal(keyring, unseal(keyring, sealed, associated_data), associated_data)


def new_master_key(key_id: str | None = None) -> MasterKey:
    """A random master key with a random id like `mk-1a2b3c4d`."""
    return MasterKey(key_id or f"mk-{secrets.token_hex(4)}", secrets.token_bytes(32))


def format_master_key(key: MasterKey) -> str:
    """The text form `id:base64`."""
    return f"{key.key_id}:{base64.b64encode(key.key).decode()}"


def parse_master_key(text: str) -> MasterKey:
    """Parse `id:base64`."""
    key_id, sep, encoded = text.strip().partition(":")
    if not sep or not key_id:
        raise ValueError("a master key is written `id:base64-of-32-bytes`")
    try:
        return MasterKey(key_id, base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"master key {key_id!r} is not base64 of 32 bytes") from exc


def parse_keyring(text: str) -> Keyring:
    """One key a line (or comma-separated), the current one first."""
    items = [part for line in text.replace(",", "\n").splitlines() if (part := line.strip())]
    if not items:
        raise ValueError("no master key given")
    keys = [parse_master_key(item) for item in items]
    return Keyring(keys[0], tuple(keys[1:]))
