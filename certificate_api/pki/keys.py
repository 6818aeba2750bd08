"""Key types, generation, PEM encoding, and the key policy applied to CSRs."""

from __future__ import annotations

import enum

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class KeyType(enum.StrEnum):
    """The key types the CA issues for."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    ED25519 = "ed25519"


class KeyPolicyError(ValueError):
    """A key the CA will not certify: too weak, or of a kind it does not issue for."""


RSA_EXPONENT = 65537
_RSA_BITS = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}
_CURVES: dict[KeyType, ec.EllipticCurve] = {
    KeyType.EC_P256: ec.SECP256R1(),
    KeyType.EC_P384: ec.SECP384R1(),
}


def generate_private_key(key_type: KeyType) -> PrivateKey:
    """A fresh private key of this type (RSA exponent 65537)."""
    if key_type in _RSA_BITS:
        return rsa.generate_private_key(public_exponent=RSA_EXPONENT, key_size=_RSA_BITS[key_type])
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type])
    return ed25519.Ed25519PrivateKey.generate()


def private_key_to_pem(key: PrivateKey | CertificateIssuerPrivateKeyTypes) -> bytes:
    """Unencrypted PKCS#8 PEM (it is sealed before it is stored)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key_pem(data: bytes) -> PrivateKey:
    """Parse a PEM private key of a supported type."""
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise KeyPolicyError("unsupported private key type")
    return key


def key_type_of(public_key: CertificatePublicKeyTypes) -> KeyType:
    """The KeyType of a public key, refusing weak or unsupported keys."""
    if isinstance(public_key, rsa.RSAPublicKey):
        size = public_key.key_size
        if size < 2048:
            raise KeyPolicyError(f"RSA keys must be at least 2048 bits (got {size})")
        # 65537 only: small exponents (3) invite attacks on unpadded or badly padded RSA,
        # and the CA/Browser Forum and most relying parties expect 65537.
        if public_key.public_numbers().e != RSA_EXPONENT:
            raise KeyPolicyError(f"RSA keys must have the public exponent {RSA_EXPONENT}")
        for key_type, bits in _RSA_BITS.items():
            if size == bits:
                return key_type
        raise KeyPolicyError(f"unsupported RSA key size {size}; use 2048, 3072 or 4096")
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        for key_type, curve in _CURVES.items():
            if public_key.curve.name == curve.name:
                return key_type
        raise KeyPolicyError(f"unsupported curve {public_key.curve.name}; use P-256 or P-384")
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return KeyType.ED25519
    raise KeyPolicyError("unsupported key type; use EC P-256/P-384, RSA or Ed25519")
