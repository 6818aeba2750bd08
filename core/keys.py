"""Public keys reported compromised: blocked, by the SHA-256 of their SubjectPublicKeyInfo,
for later requests of the certificate's owner, or of every account when the revocation
proved possession of the private key (`verify_key_proof`)."""

from __future__ import annotations

import hashlib
import json
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from core import queries
from core.errors import Invalid
from core.statements import Database

KEY_COMPROMISE = "keyCompromise"


def spki_sha256(public_key: CertificatePublicKeyTypes) -> str:
    """The lowercase hex SHA-256 of a public key's DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def certificate_spki_sha256(certificate_pem: str) -> str:
    """`spki_sha256` of a certificate's public key."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    return spki_sha256(certificate.public_key())


async def refuse_blocked(
    db: Database, public_key: CertificatePublicKeyTypes, account_id: uuid.UUID
) -> None:
    """Refuse a key revoked for keyCompromise before: on a certificate of this account, or
    on anyone's by a revocation that proved possession of the private key."""
    spki = spki_sha256(public_key)
    if await db.one(queries.BLOCKED_KEY, spki_sha256=spki, account_id=account_id) is not None:
        raise Invalid.field(["csr"], "this public key was reported compromised; use a new key")


ProofKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


def proof_key(certificate_pem: str) -> tuple[ProofKey, str] | None:
    """A certificate's public key and the JWS `alg` a key_proof made with it must name
    (None: a key type no proof is taken from)."""
    key = x509.load_pem_x509_certificate(certificate_pem.encode()).public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = {"secp256r1": "ES256", "secp384r1": "ES384"}.get(key.curve.name)
        return (key, alg) if alg else None
    if isinstance(key, rsa.RSAPublicKey):
        return key, "RS256"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key, "EdDSA"
    return None


def verify_key_proof(proof: str, certificate_id: uuid.UUID, certificate_pem: str) -> None:
    """Check a revocation's `key_proof`: a compact JWS over `{"certificate_id": "<id>"}`
    signed by the certificate's private key with the `alg` of its key type. Invalid, naming
    `key_proof`, otherwise."""
    found = proof_key(certificate_pem)
    if found is None:
        raise _bad_proof("this certificate's key type cannot sign a key_proof")
    public_key, alg = found
    try:
        header = jwt.get_unverified_header(proof)
    except jwt.PyJWTError:  # PyJWT also refuses a crit naming an extension it lacks
        raise _bad_proof("not a compact JWS with a protected header this service takes") from None
    if "crit" in header or "b64" in header:  # no extension is needed to sign a small object
        raise _bad_proof("the protected header may not carry crit or b64")
    if header.get("alg") != alg:
        raise _bad_proof(f"the protected header's alg must be {alg} for this certificate's key")
    try:
        signed = jwt.PyJWS().decode_complete(proof, key=public_key, algorithms=[alg])
    except jwt.InvalidSignatureError:
        raise _bad_proof("the signature does not verify with the certificate's key") from None
    except jwt.PyJWTError:
        raise _bad_proof("not a compact JWS") from None
    try:
        payload = json.loads(signed["payload"])
    except (ValueError, RecursionError):
        payload = None
    named_id = payload.get("certificate_id") if isinstance(payload, dict) else None
    if named_id != str(certificate_id):
        raise _bad_proof(f'the payload must be {{"certificate_id": "{certificate_id}"}}')


def _bad_proof(msg: str) -> Invalid:
    return Invalid.field(["key_proof"], msg)
