"""Requests as JWS (RFC 8555 section 6.2): flattened JSON serialization only, one signature,
everything in the protected header, `jwk` xor `kid`, an algorithm of the allowed ones on a
key of the right kind. Keys, thumbprints (RFC 7638) and the algorithms are josepy's.

No JWS extension is understood: a protected header with `crit` (RFC 7515 section 4.1.11
requires refusing one whose parameters are not understood) or `b64` (RFC 7797's unencoded
payload) is `malformed`. JSON too deeply nested to decode is `malformed` like any other.

Parsing (`parse`) checks the form; `verify` checks a signature against a key. Neither
touches the database: looking up a `kid` and redeeming the nonce are the caller's.
"""

from __future__ import annotations

import binascii
import hmac
import json
from dataclasses import dataclass
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.b64 import b64decode
from josepy.errors import DeserializationError
from josepy.jwa import ES256, ES384, HS256, HS384, HS512, RS256
from josepy.jwk import JWK

from core.acme.problems import AcmeProblem, malformed
from core.validation import b64url

# RFC 8555 section 6.2: servers must support ES256 and should support RS256 (certbot's and
# lego's RSA keys); ES384 for P-384 keys. Never "none", never a MAC for an account key.
ACCOUNT_ALGORITHMS = {
    "RS256": RS256,
    "ES256": ES256,
    "ES384": ES384,
}
EAB_ALGORITHMS = {"HS256": HS256, "HS384": HS384, "HS512": HS512}
MIN_RSA_BITS = 2048
_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1}
_CURVE_NAMES = {"ES256": "P-256", "ES384": "P-384"}
_FLATTENED = frozenset({"protected", "payload", "signature"})
_REFUSED_HEADERS = ("crit", "b64")


def loads(data: bytes | str, what: str) -> Any:
    """A JSON value; `malformed` if `data` is not JSON, or too deeply nested to decode."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise malformed(f"{what} is not JSON") from None


def _b64decode(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise malformed(f"{what} is not a base64url string")
    try:
        return b64decode(value)
    except (binascii.Error, ValueError):
        raise malformed(f"{what} is not valid base64url") from None


@dataclass(frozen=True)
class Jws:
    """A flattened JWS, parsed and checked for form; its signature not yet verified."""

    protected: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        """The protected header's algorithm."""
        return str(self.protected["alg"])

    @property
    def url(self) -> str | None:
        """The protected header's `url`."""
        url = self.protected.get("url")
        return url if isinstance(url, str) else None

    @property
    def nonce(self) -> str | None:
        """The protected header's `nonce`."""
        nonce = self.protected.get("nonce")
        return nonce if isinstance(nonce, str) else None

    @property
    def kid(self) -> str | None:
        """The protected header's `kid` (an account URL)."""
        kid = self.protected.get("kid")
        return kid if isinstance(kid, str) else None

    @property
    def jwk(self) -> dict[str, Any] | None:
        """The protected header's `jwk`."""
        jwk = self.protected.get("jwk")
        return jwk if isinstance(jwk, dict) else None

    def json(self) -> dict[str, Any] | None:
        """The payload as a JSON object; None for POST-as-GET (an empty payload)."""
        if self.payload == b"":
            return None
        value = loads(self.payload, "the JWS payload")
        if not isinstance(value, dict):
            raise malformed("the JWS payload is not a JSON object")
        return value


def parse(document: Any, *, algorithms: dict[str, Any] = ACCOUNT_ALGORITHMS) -> Jws:
    """Check the form of a flattened JWS (a decoded JSON value): exactly one signature, a
    protected header holding an allowed `alg` and no `crit` or `b64`, no unprotected
    header."""
    if not isinstance(document, dict):
        raise malformed("the request body is not a JWS object")
    if "signatures" in document:
        raise malformed("only the flattened JWS serialization is accepted (one signature)")
    if "header" in document:
        raise malformed("a JWS unprotected header is not accepted: protect every parameter")
    if set(document) != _FLATTENED:
        missing = ", ".join(sorted(_FLATTENED - set(document))) or "none"
        raise malformed(f"the JWS needs exactly protected, payload, signature (missing: {missing})")
    protected_b64, payload_b64 = document["protected"], document["payload"]
    protected = loads(
        _b64decode(protected_b64, "the JWS protected header"), "the JWS protected header"
    )
    if not isinstance(protected, dict):
        raise malformed("the JWS protected header is not a JSON object")
    refused = [name for name in _REFUSED_HEADERS if name in protected]
    if refused:
        raise malformed(
            f"the JWS protected header carries {' and '.join(refused)}: no JWS extension is "
            "understood here"
        )
    alg = protected.get("alg")
    if not isinstance(alg, str):
        raise malformed("the JWS protected header's alg is not a string")
    if alg not in algorithms:
        allowed = sorted(algorithms)
        raise AcmeProblem(
            "badSignatureAlgorithm",
            f"the JWS algorithm {alg!r} is not accepted here; use one of {', '.join(allowed)}",
            algorithms=allowed,
        )
    return Jws(
        protected=protected,
        payload=_b64decode(payload_b64, "the JWS payload"),
        signing_input=f"{protected_b64}.{payload_b64}".encode(),
        signature=_b64decode(document["signature"], "the JWS signature"),
    )


def load_jwk(value: Any) -> JWK:
    """A JWK from its JSON form; DeserializationError, ValueError or TypeError if it is none."""
    if not isinstance(value, dict):
        raise TypeError("a JWK is a JSON object")
    try:
        return cast(JWK, JWK.from_json(value))
    except (AttributeError, KeyError, OverflowError) as exc:  # josepy on members not strings
        raise TypeError("a JWK's members are base64url strings") from exc


def raw_key(key: JWK) -> Any:
    """The pyca/cryptography key a JWK holds (josepy wraps it to make it comparable)."""
    return getattr(key.key, "_wrapped", key.key)


def account_key(jwk: dict[str, Any]) -> JWK:
    """A public key an account may sign with: RSA of 2048 bits or more, or EC P-256/P-384;
    `badPublicKey` otherwise."""
    if jwk.get("kty") not in ("RSA", "EC"):
        raise AcmeProblem("badPublicKey", "an account key is an RSA or EC public key")
    try:
        key = load_jwk(jwk)
    except (DeserializationError, ValueError, TypeError):
        raise AcmeProblem("badPublicKey", "the JWK is not a valid public key") from None
    public = raw_key(key)
    if isinstance(public, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise AcmeProblem("badPublicKey", "the JWK holds a private key: send the public key only")
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < MIN_RSA_BITS:
        raise AcmeProblem("badPublicKey", f"an RSA account key has {MIN_RSA_BITS} bits at least")
    if isinstance(public, ec.EllipticCurvePublicKey) and not isinstance(
        public.curve, ec.SECP256R1 | ec.SECP384R1
    ):
        raise AcmeProblem("badPublicKey", "an EC account key is on P-256 or P-384")
    return key


def thumbprint(key: JWK) -> str:
    """The RFC 7638 thumbprint (SHA-256), base64url: what names an account's key."""
    return b64url(key.thumbprint())


def public_jwk(key: JWK) -> dict[str, Any]:
    """The key as stored and shown: its public JWK members only."""
    return dict(key.public_key().to_partial_json())


def verify(jws: Jws, key: JWK) -> None:
    """The signature, by `key`, with the header's algorithm, which must suit the key
    (RS256 for RSA; ES256 for P-256, ES384 for P-384: `badSignatureAlgorithm` otherwise, as
    Boulder answers, also for a `kid`'s key); `malformed` when it does not verify."""
    alg = jws.alg
    public = raw_key(key)
    if not _suits(alg, public):
        needs = "an RSA key" if alg == "RS256" else f"an EC {_CURVE_NAMES[alg]} key"
        raise AcmeProblem("badSignatureAlgorithm", f"{alg} needs {needs}", algorithms=[alg])
    if not ACCOUNT_ALGORITHMS[alg].verify(public, jws.signing_input, jws.signature):
        raise malformed("the JWS signature does not verify")


def _suits(alg: str, public: Any) -> bool:
    if alg == "RS256":
        return isinstance(public, rsa.RSAPublicKey)
    return isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, _CURVES[alg])


def verify_mac(jws: Jws, mac_key: bytes) -> None:
    """An external account binding's MAC (HS256/384/512 by the header)."""
    expected = EAB_ALGORITHMS[jws.alg].sign(mac_key, jws.signing_input)
    if not hmac.compare_digest(expected, jws.signature):
        raise AcmeProblem("unauthorized", "the external account binding's MAC does not verify")
