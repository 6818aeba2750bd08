"""Raw bodies no ACME client would send, at every kind of ACME POST: each is a 4xx ACME
problem with a fresh Replay-Nonce, never a 5xx (wire.py checks every answer for that).
Listed cases for what has broken servers before (header values of the wrong type, deep
JSON, JWS extensions, odd nonces, huge fields), then a seeded generated run over the
protected header's members."""

from __future__ import annotations

import json
from typing import Any

import josepy as jose
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.acme_protocol.conftest import Account, Acme
from tests.acme_protocol.wire import ACME_ERROR, PROBLEM, b64, ec_key, signed

DEEP = "[" * 15_000 + "]" * 15_000
HUGE = "A" * 40_000
BODY_CASES = [
    "empty", "null", "number", "string", "deep-body", "deep-protected", "deep-payload",
    "protected-not-ascii", "protected-not-utf8", "protected-array", "payload-not-base64",
    "payload-not-utf8", "payload-array", "signature-number", "signature-huge",
    "extra-member", "duplicate-alg", "nul-bytes", "lone-surrogate",
]  # fmt: skip
PATHS = ["/acme/new-account", "/acme/new-order", "/acme/revoke-cert", "/acme/key-change", "ACCT"]


@pytest.fixture
def account(acme: Acme) -> Account:
    return acme.register()


def _header_cases() -> dict[str, dict[str, Any]]:
    """Protected header members, replaced or added (None removes)."""
    return {
        "alg-list": {"alg": ["ES256"]},
        "alg-object": {"alg": {"ES256": 1}},
        "alg-number": {"alg": 1.5},
        "alg-null": {"alg": None},
        "alg-empty": {"alg": ""},
        "alg-huge": {"alg": HUGE},
        "crit-unknown": {"crit": ["exp"], "exp": 0},
        "crit-b64": {"crit": ["b64"], "b64": False},
        "b64-false": {"b64": False},
        "nonce-number": {"nonce": 12345},
        "nonce-list": {"nonce": ["x"]},
        "nonce-object": {"nonce": {"a": "b"}},
        "nonce-huge": {"nonce": HUGE},
        "nonce-unicode": {"nonce": "ñönce-✓" * 8},
        "nonce-nul": {"nonce": "\x00" * 54},
        "url-number": {"url": 7},
        "url-huge": {"url": "http://127.0.0.1/" + HUGE},
        "kid-number": {"kid": 1, "jwk": None},
        "kid-huge": {"kid": HUGE, "jwk": None},
        "kid-list": {"kid": ["a"], "jwk": None},
        "jwk-string": {"jwk": "key"},
        "jwk-list": {"jwk": [1, 2]},
        "jwk-empty": {"jwk": {}},
        "jwk-huge-n": {"jwk": {"kty": "RSA", "n": HUGE, "e": "AQAB"}},
        "jwk-bad-curve": {"jwk": {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}},
        "jwk-oct": {"jwk": {"kty": "oct", "k": "AAAA"}},
        "jwk-okp": {"jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64(bytes(32))}},
        "jwk-number-members": {"jwk": {"kty": "EC", "crv": "P-256", "x": 1, "y": 2}},
    }


def _body_cases(acme: Acme, account: Account, url: str) -> dict[str, bytes]:
    """Whole bodies, made around a correct JWS for `url`."""
    good = signed(account.key, url, {}, acme.wire.nonce(), kid=account.kid)

    def with_(**members: Any) -> bytes:
        return json.dumps({**good, **members}).encode()

    header = json.loads(jose.b64decode(good["protected"]))
    return {
        "empty": b"",
        "null": b"null",
        "number": b"1e999",
        "string": b'"jws"',
        "deep-body": ('{"protected": ' + DEEP + "}").encode(),
        "deep-protected": with_(protected=b64(DEEP.encode())),
        "deep-payload": with_(payload=b64(DEEP.encode())),
        "protected-not-ascii": with_(protected="ñ" * 10),
        "protected-not-utf8": with_(protected=b64(b"\xff\xfe{")),
        "protected-array": with_(protected=b64(b"[]")),
        "payload-not-base64": with_(payload="*" * 20),
        "payload-not-utf8": with_(payload=b64(b"\xff\xfe")),
        "payload-array": with_(payload=b64(b"[1]")),
        "signature-number": with_(signature=5),
        "signature-huge": with_(signature=HUGE),
        "extra-member": with_(extra=1),
        "duplicate-alg": with_(
            protected=b64(('{"alg": "ES256", ' + json.dumps(header)[1:]).encode())
        ),
        "nul-bytes": b"\x00" * 100,
        "lone-surrogate": with_(protected=b64(b'{"alg": "\\ud800"}')),
    }


def _url(acme: Acme, account: Account, path: str) -> str:
    return account.kid if path == "ACCT" else acme.url(path)


def _refused(response: Any) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith(PROBLEM), response.text[:500]
    assert response.json()["type"].startswith(ACME_ERROR)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", sorted(_header_cases()))
def test_hostile_protected_header_is_a_4xx(
    acme: Acme, account: Account, path: str, case: str
) -> None:
    url = _url(acme, account, path)
    members = _header_cases()[case]
    kid = None if members.get("jwk") is not None else account.kid
    response = acme.wire.send(account.key, url, {}, kid=kid, header=members)
    _refused(response)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", BODY_CASES)
def test_hostile_body_is_a_4xx(acme: Acme, account: Account, path: str, case: str) -> None:
    url = _url(acme, account, path)
    body = _body_cases(acme, account, url)[case]
    _refused(acme.wire.post(url, body))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_MEMBERS = st.dictionaries(
    st.sampled_from(["alg", "nonce", "url", "kid", "jwk", "crit", "b64", "typ", "x5c"]),
    _JSON,
    max_size=4,
)


@seed(20261207)
@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(members=_MEMBERS, payload=_JSON, path=st.sampled_from(PATHS))
def test_generated_protected_headers_are_never_a_5xx(
    acme: Acme, account: Account, members: dict[str, Any], payload: Any, path: str
) -> None:
    """Members of the protected header replaced by generated JSON values, the payload
    generated too, signed by a key that is not the account's: always refused, a 4xx."""
    url = _url(acme, account, path)
    response = acme.wire.send(ec_key(), url, payload, kid=account.kid, header=members)
    _refused(response)
