"""Secrets read from settings, or generated into `var/` on first start for development."""

from __future__ import annotations

import base64
import logging
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from schema.settings import CommonSettings

log = logging.getLogger(__name__)

TOKEN_PRIVATE_KEY_FILE = "token-signing-key.pem"
TOKEN_PUBLIC_KEY_FILE = "token-signing-key.pub.pem"
WEBHOOK_SECRET_FILE = "webhook-secret"
MASTER_KEY_FILE = "master-keys"


def _create_exclusive(path: Path, data: bytes) -> bool:
    """Publish a new 0600 file whole; False when another process published it first.

    The content is written and synced under a private name and then hard-linked into place,
    which fails if the name exists: a concurrent reader sees no file or the whole file,
    never an empty one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp makes it 0600
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(staging, path)
        except FileExistsError:
            return False
    finally:
        os.unlink(staging)
    log.warning("generated %s for development; production must supply its own secret", path.name)
    return True


def _read_or_create(path: Path, make: bytes) -> bytes:
    _create_exclusive(path, make)
    # A concurrent starter may have just created it: read what won.
    return path.read_bytes()


def token_signing_key(var_dir: Path, configured: str | None, file: Path | None) -> bytes:
    """The PEM private key that signs access tokens (account service only)."""
    if configured:
        return configured.encode()
    if file is not None:
        return file.read_bytes()
    private_path = var_dir / TOKEN_PRIVATE_KEY_FILE
    if not private_path.exists():
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _create_exclusive(private_path, pem)
    private_pem = private_path.read_bytes()
    public_path = var_dir / TOKEN_PUBLIC_KEY_FILE
    if not public_path.exists():
        loaded = serialization.load_pem_private_key(private_pem, password=None)
        public_pem = loaded.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _create_exclusive(public_path, public_pem)
    return private_pem


def token_verify_key(settings: CommonSettings) -> bytes:
    """The PEM public key that verifies access tokens; it cannot mint them."""
    if settings.token_public_key is not None:
        return settings.token_public_key.get_secret_value().encode()
    if settings.token_public_key_file is not None:
        return settings.token_public_key_file.read_bytes()
    public_path = settings.var_dir / TOKEN_PUBLIC_KEY_FILE
    if not public_path.exists():
        # First start in development: whichever service starts first makes the pair.
        token_signing_key(settings.var_dir, None, None)
    return public_path.read_bytes()


def webhook_secret(settings: CommonSettings) -> str:
    """`whsec_` + base64 of 32 random bytes, from settings or `var/`."""
    if settings.webhook_secret is not None:
        value = settings.webhook_secret.get_secret_value()
    elif settings.webhook_secret_file is not None:
        value = settings.webhook_secret_file.read_text().strip()
    else:
        generated = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        stored = _read_or_create(settings.var_dir / WEBHOOK_SECRET_FILE, generated.encode())
        value = stored.decode().strip()
    if not value.startswith("whsec_"):
        raise ValueError("WEBHOOK_SECRET must start with 'whsec_'")
    if len(base64.b64decode(value.removeprefix("whsec_"))) < 24:
        raise ValueError("WEBHOOK_SECRET must hold at least 24 random bytes")
    return value


def master_keys_text(var_dir: Path, configured: str | None, file: Path | None) -> str:
    """Master keys as `id:base64` lines, current first; generated into `var/` when none given."""
    if configured:
        return configured
    if file is not None:
        return file.read_text()
    key_id = "mk-" + secrets.token_hex(4)
    line = f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}\n"
    return _read_or_create(var_dir / MASTER_KEY_FILE, line.encode()).decode()
