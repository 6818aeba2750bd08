"""ACME on the wire for the protocol tests: certbot's `acme` library for what a well-behaved
client sends, and raw flattened JWS (josepy's keys and algorithms) for what none would.

Every answer under /acme/ either client receives is checked on the way in: it carries a
`Replay-Nonce` and is never a 5xx.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import josepy as jose
import requests
from acme import client as acme_client
from acme import messages
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ACME_ERROR = "urn:ietf:params:acme:error:"
JOSE = "application/jose+json"
PROBLEM = "application/problem+json"
_UNSET = object()


def ec_key(curve: ec.EllipticCurve | None = None) -> jose.JWKEC:
    """A fresh EC account key (P-256 unless told)."""
    return jose.JWKEC(key=ec.generate_private_key(curve or ec.SECP256R1()))


def rsa_key() -> jose.JWKRSA:
    """A fresh RSA 2048 account key."""
    return jose.JWKRSA(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))


def alg_of(key: jose.JWK) -> jose.JWASignature:
    """The algorithm a key signs with: RS256, or ES256/ES384 by the curve."""
    if isinstance(key, jose.JWKRSA):
        return jose.RS256
    return jose.ES384 if key.key.curve.name == "secp384r1" else jose.ES256


def b64(data: bytes) -> str:
    """base64url without padding."""
    return jose.b64encode(data).decode()


def public_jwk(key: jose.JWK) -> dict[str, Any]:
    """A key's public JWK, as JSON."""
    return dict(key.public_key().to_partial_json())


def signed(
    key: jose.JWK,
    url: str,
    payload: Any = None,
    nonce: str | None = None,
    *,
    kid: str | None = None,
    alg: jose.JWASignature | None = None,
    header: Mapping[str, Any] | None = None,
    sign: Callable[[bytes], bytes] | None = None,
) -> dict[str, str]:
    """A flattened JWS: `payload` None is POST-as-GET (empty), bytes go as they are, anything
    else as JSON. `jwk` unless `kid` is given; `header` adds members to the protected header
    (`alg` included) or, with the value None, removes them; `sign` replaces the signing by
    `key` (it gets the signing input)."""
    alg = alg or alg_of(key)
    protected: dict[str, Any] = {"alg": alg.name, "url": url}
    if nonce is not None:
        protected["nonce"] = nonce
    if kid is None:
        protected["jwk"] = public_jwk(key)
    else:
        protected["kid"] = kid
    for name, value in (header or {}).items():
        if value is None:
            protected.pop(name, None)
        else:
            protected[name] = value
    if payload is None:
        body = b""
    elif isinstance(payload, bytes):
        body = payload
    else:
        body = json.dumps(payload).encode()
    head = b64(json.dumps(protected).encode())
    signing_input = f"{head}.{b64(body)}".encode()
    signature = alg.sign(key.key, signing_input) if sign is None else sign(signing_input)
    return {"protected": head, "payload": b64(body), "signature": b64(signature)}


def _acme_answer(response: httpx.Response) -> None:
    if response.request.url.path.startswith("/acme/"):
        assert response.headers.get("Replay-Nonce"), response.request.url
        assert response.status_code < 500, response.read()


class Wire:
    """Raw requests to one certificate service: `base` is its PUBLIC_BASE_URL."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(timeout=30, event_hooks={"response": [_acme_answer]})

    def url(self, path: str) -> str:
        """The absolute URL of a path."""
        return self.base + path

    def nonce(self) -> str:
        """A fresh nonce (HEAD newNonce)."""
        response = self.http.head(self.url("/acme/new-nonce"))
        assert response.status_code == 200
        return response.headers["Replay-Nonce"]

    def post(self, url: str, document: Any, content_type: str = JOSE) -> httpx.Response:
        """POST a document as it is."""
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        return self.http.post(url, content=body, headers={"Content-Type": content_type})

    def send(
        self,
        key: jose.JWK,
        url: str,
        payload: Any = None,
        *,
        nonce: Any = _UNSET,
        **options: Any,
    ) -> httpx.Response:
        """Sign `payload` for `url` (see `signed`) with a fresh nonce unless one is given,
        and POST it."""
        fresh = self.nonce() if nonce is _UNSET else nonce
        return self.post(url, signed(key, url, payload, fresh, **options))

    def close(self) -> None:
        self.http.close()


def problem(response: httpx.Response, kind: str, status: int | None = None) -> dict[str, Any]:
    """Assert the answer is the ACME error `kind` (with `status` when given), as
    problem+json with a Replay-Nonce; its document."""
    assert response.headers.get("Replay-Nonce"), response.headers
    assert response.headers["content-type"].startswith(PROBLEM), response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == ACME_ERROR + kind, body
    if status is not None:
        assert response.status_code == status, (response.status_code, body)
    assert 400 <= response.status_code < 500, (response.status_code, body)
    assert body["status"] == response.status_code
    return body


def _checked(response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
    if requests.utils.urlparse(response.url).path.startswith("/acme/"):
        assert response.headers.get("Replay-Nonce"), response.url
        assert response.status_code < 500, response.text


def library_client(base: str, key: jose.JWK) -> acme_client.ClientV2:
    """certbot's ACME client for the directory at `base`, signing with `key`."""
    net = acme_client.ClientNetwork(key, alg=alg_of(key), user_agent="tessera-protocol-tests")
    net.session.hooks["response"].append(_checked)
    directory = acme_client.ClientV2.get_directory(f"{base}/acme/directory", net)
    return acme_client.ClientV2(directory, net)


def new_registration(
    client: acme_client.ClientV2, eab: Mapping[str, str] | None, email: str | None = None
) -> messages.NewRegistration:
    """A newAccount body with the external account binding `eab` ({"key_id", "hmac_key"})."""
    binding = None
    if eab is not None:
        assert client.net.key is not None
        binding = messages.ExternalAccountBinding.from_data(
            account_public_key=client.net.key.public_key(),
            kid=eab["key_id"],
            hmac_key=eab["hmac_key"],
            directory=client.directory,
        )
    return messages.NewRegistration.from_data(
        email=email, terms_of_service_agreed=True, external_account_binding=binding
    )
