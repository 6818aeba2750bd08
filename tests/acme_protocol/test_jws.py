"""The JWS every ACME POST is (RFC 8555 section 6.2): flattened, everything protected,
`jwk` xor `kid`, the request's own `url`, a signature that verifies by an account algorithm,
`application/jose+json`, a nonce good once. Each fault has its ACME error, with a fresh
Replay-Nonce and never a 5xx."""

from __future__ import annotations

import hashlib
import hmac
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import josepy as jose
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.acme_protocol.conftest import Account, Acme
from tests.acme_protocol.wire import ACME_ERROR, ec_key, problem, public_jwk, rsa_key, signed


@pytest.fixture
def account(acme: Acme) -> Account:
    return acme.register()


def test_post_as_get_by_the_account_key_works(acme: Acme, account: Account) -> None:
    """The control of the cases below: the same raw JWS, made right, is accepted."""
    response = acme.wire.send(account.key, account.kid, kid=account.kid)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "valid"
    assert response.headers["Replay-Nonce"]


def test_rsa_and_p384_account_keys_register_and_sign(acme: Acme) -> None:
    for key in (rsa_key(), ec_key(ec.SECP384R1())):
        account = acme.register(key=key)
        response = acme.wire.send(account.key, account.kid, kid=account.kid)
        assert response.status_code == 200, response.text


def test_both_jwk_and_kid_is_malformed(acme: Acme, account: Account) -> None:
    both = {"jwk": public_jwk(account.key)}
    response = acme.wire.send(account.key, account.kid, kid=account.kid, header=both)
    problem(response, "malformed", 400)


def test_neither_jwk_nor_kid_is_malformed(acme: Acme, account: Account) -> None:
    response = acme.wire.send(account.key, account.kid, header={"jwk": None})
    problem(response, "malformed", 400)


def test_jwk_where_an_account_url_is_needed_is_malformed(acme: Acme, account: Account) -> None:
    response = acme.wire.send(account.key, acme.url("/acme/new-order"), {"identifiers": []})
    problem(response, "malformed", 400)


def test_url_of_another_resource_is_unauthorized(acme: Acme, account: Account) -> None:
    """RFC 8555 section 6.4: the protected `url` must be the one the request went to."""
    document = signed(
        account.key, acme.url("/acme/new-order"), None, acme.wire.nonce(), kid=account.kid
    )
    response = acme.wire.post(account.kid, document)
    problem(response, "unauthorized", 403)


def test_url_with_another_host_is_unauthorized(acme: Acme, account: Account) -> None:
    elsewhere = account.kid.replace("127.0.0.1", "localhost")
    document = signed(account.key, elsewhere, None, acme.wire.nonce(), kid=account.kid)
    problem(acme.wire.post(account.kid, document), "unauthorized", 403)


def test_bad_signature_is_malformed(acme: Acme, account: Account) -> None:
    response = acme.wire.send(account.key, account.kid, kid=account.kid, sign=lambda _: bytes(64))
    problem(response, "malformed", 400)


def test_signature_by_another_key_is_malformed(acme: Acme, account: Account) -> None:
    response = acme.wire.send(ec_key(), account.kid, kid=account.kid)
    problem(response, "malformed", 400)


def test_tampered_payload_is_malformed(acme: Acme, account: Account) -> None:
    good = signed(account.key, account.kid, {"contact": []}, acme.wire.nonce(), kid=account.kid)
    other = jose.b64encode(b'{"status": "deactivated"}').decode()
    problem(acme.wire.post(account.kid, dict(good, payload=other)), "malformed", 400)
    after = acme.wire.send(account.key, account.kid, kid=account.kid)
    assert after.json()["status"] == "valid"


@pytest.mark.parametrize(
    "path", ["/acme/acct/00000000-0000-4000-8000-000000000000", "/acme/acct/not-an-id"]
)
def test_unknown_kid_is_account_does_not_exist(acme: Acme, account: Account, path: str) -> None:
    unknown = acme.url(path)
    response = acme.wire.send(account.key, acme.url("/acme/new-order"), {}, kid=unknown)
    problem(response, "accountDoesNotExist", 400)


def test_kid_that_is_no_account_url_is_account_does_not_exist(acme: Acme, account: Account) -> None:
    response = acme.wire.send(
        account.key, acme.url("/acme/new-order"), {}, kid="https://elsewhere.example/acct/1"
    )
    problem(response, "accountDoesNotExist", 400)


def test_hs256_as_an_account_algorithm_is_bad_signature_algorithm(
    acme: Acme, account: Account
) -> None:
    def mac(data: bytes) -> bytes:
        return hmac.new(b"a guessable shared secret", data, hashlib.sha256).digest()

    response = acme.wire.send(
        account.key, account.kid, kid=account.kid, header={"alg": "HS256"}, sign=mac
    )
    body = problem(response, "badSignatureAlgorithm", 400)
    assert {"ES256", "RS256"} <= set(body["algorithms"])
    assert "HS256" not in body["algorithms"]


def test_none_algorithm_is_bad_signature_algorithm(acme: Acme, account: Account) -> None:
    response = acme.wire.send(
        account.key, account.kid, kid=account.kid, header={"alg": "none"}, sign=lambda _: b""
    )
    problem(response, "badSignatureAlgorithm", 400)


def test_algorithm_that_does_not_suit_the_key_is_bad_signature_algorithm(
    acme: Acme, account: Account
) -> None:
    """An ES384 signature claimed for the account's P-256 key."""
    response = acme.wire.send(account.key, account.kid, kid=account.kid, header={"alg": "ES384"})
    problem(response, "badSignatureAlgorithm", 400)


def test_general_serialization_is_malformed(acme: Acme, account: Account) -> None:
    flat = signed(account.key, account.kid, None, acme.wire.nonce(), kid=account.kid)
    general = {
        "payload": flat["payload"],
        "signatures": [{"protected": flat["protected"], "signature": flat["signature"]}],
    }
    problem(acme.wire.post(account.kid, general), "malformed", 400)


def test_unprotected_header_is_malformed(acme: Acme, account: Account) -> None:
    flat = signed(account.key, account.kid, None, acme.wire.nonce(), kid=account.kid)
    with_header = dict(flat, header={"kid": account.kid})
    problem(acme.wire.post(account.kid, with_header), "malformed", 400)


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"protected": 1, "payload": "", "signature": ""}', b"{}"],
    ids=["not-json", "array", "wrong-types", "empty-object"],
)
def test_body_that_is_no_jws_is_malformed(acme: Acme, account: Account, body: bytes) -> None:
    problem(acme.wire.post(account.kid, body), "malformed", 400)


def test_protected_header_that_is_no_json_is_malformed(acme: Acme, account: Account) -> None:
    flat = signed(account.key, account.kid, None, acme.wire.nonce(), kid=account.kid)
    garbage = jose.b64encode(b"{not json").decode()
    problem(acme.wire.post(account.kid, dict(flat, protected=garbage)), "malformed", 400)


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_wrong_content_type_is_415_with_an_acme_type(
    acme: Acme, account: Account, content_type: str
) -> None:
    document = signed(account.key, account.kid, None, acme.wire.nonce(), kid=account.kid)
    response = acme.wire.post(account.kid, document, content_type=content_type)
    assert response.status_code == 415, response.text
    assert response.json()["type"].startswith(ACME_ERROR)
    assert response.headers["Replay-Nonce"]


def test_reused_nonce_is_bad_nonce(acme: Acme, account: Account) -> None:
    nonce = acme.wire.nonce()
    first = acme.wire.send(account.key, account.kid, nonce=nonce, kid=account.kid)
    assert first.status_code == 200, first.text
    again = acme.wire.send(account.key, account.kid, nonce=nonce, kid=account.kid)
    problem(again, "badNonce", 400)
    # The fresh nonce of the refusal is good.
    retried = acme.wire.send(
        account.key, account.kid, nonce=again.headers["Replay-Nonce"], kid=account.kid
    )
    assert retried.status_code == 200, retried.text


def test_one_nonce_sent_at_once_many_times_is_good_once(acme: Acme, account: Account) -> None:
    nonce = acme.wire.nonce()
    documents = [signed(account.key, account.kid, None, nonce, kid=account.kid) for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda d: acme.wire.post(account.kid, d), documents))
    assert sorted(a.status_code for a in answers) == [200] + [400] * 7
    for refused in (a for a in answers if a.status_code == 400):
        problem(refused, "badNonce", 400)


def test_nonce_of_a_verified_but_refused_request_is_used_up(acme: Acme, account: Account) -> None:
    """Signed by the account's key, for another resource's URL: the signature verifies, so
    the refusal spends the nonce."""
    nonce = acme.wire.nonce()
    document = signed(account.key, acme.url("/acme/new-order"), None, nonce, kid=account.kid)
    problem(acme.wire.post(account.kid, document), "unauthorized", 403)
    again = acme.wire.send(account.key, account.kid, nonce=nonce, kid=account.kid)
    problem(again, "badNonce", 400)


@pytest.mark.parametrize(
    "fault",
    ["bad-signature", "unsigned", "another-key", "jwk-of-another-key", "unknown-kid"],
)
def test_nonce_of_a_request_whose_signature_does_not_verify_stays_good(
    acme: Acme, account: Account, fault: str
) -> None:
    """Whoever sees a client's unused nonce cannot burn it with a request they cannot sign."""
    nonce = acme.wire.nonce()
    if fault == "bad-signature":
        refused = acme.wire.send(
            account.key, account.kid, nonce=nonce, kid=account.kid, sign=lambda _: bytes(64)
        )
    elif fault == "unsigned":
        refused = acme.wire.send(
            account.key, account.kid, nonce=nonce, kid=account.kid, sign=lambda _: b""
        )
    elif fault == "another-key":
        refused = acme.wire.send(ec_key(), account.kid, nonce=nonce, kid=account.kid)
    elif fault == "jwk-of-another-key":  # a jwk that is not the key that signed
        other = ec_key()
        refused = acme.wire.send(
            other,
            acme.url("/acme/new-account"),
            {"onlyReturnExisting": True},
            nonce=nonce,
            header={"jwk": public_jwk(ec_key())},
        )
    else:
        unknown = acme.url("/acme/acct/00000000-0000-4000-8000-000000000000")
        refused = acme.wire.send(account.key, account.kid, nonce=nonce, kid=unknown)
    assert 400 <= refused.status_code < 500, refused.text
    assert refused.json()["type"] != ACME_ERROR + "badNonce", refused.text
    good = acme.wire.send(account.key, account.kid, nonce=nonce, kid=account.kid)
    assert good.status_code == 200, good.text
    problem(acme.wire.send(account.key, account.kid, nonce=nonce, kid=account.kid), "badNonce")


def _respellings(nonce: str) -> dict[str, str]:
    """Other spellings of a nonce that lenient base64url decoding reads as the same bytes
    (or that a lenient parser might unquote or strip)."""
    last = nonce[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # 40 bytes in 54 characters: the last one carries 2 bits that are not the nonce's.
    other_bits = alphabet[alphabet.index(last) ^ 1]
    return {
        "padding-one": nonce + "=",
        "padding-two": nonce + "==",
        "unused-trailing-bits": nonce[:-1] + other_bits,
        "slash-for-underscore": nonce.replace("_", "/"),
        "plus-for-dash": nonce.replace("-", "+"),
        "trailing-newline": nonce + "\n",
        "trailing-space": nonce + " ",
        "leading-space": " " + nonce,
        "percent-encoded": nonce.replace("_", "%5F").replace("-", "%2D"),
        "over-long-padding": nonce + "=" * 120,
        "over-long-whitespace": nonce + " " * 120,
    }


def _nonce_with_dash_and_underscore(acme: Acme) -> str:
    """A fresh nonce that has both a `-` and a `_` (about a third have)."""
    for _ in range(200):
        nonce = acme.wire.nonce()
        if "-" in nonce and "_" in nonce:
            return nonce
    raise AssertionError("no nonce with both - and _ in 200")


def test_another_spelling_of_a_nonce_is_bad_nonce(acme: Acme, account: Account) -> None:
    """A nonce is one exact string, good once: every other spelling is badNonce, before
    the nonce is used and after, and none of them uses it up."""
    nonce = _nonce_with_dash_and_underscore(acme)
    respellings = _respellings(nonce)
    assert len(set(respellings.values()) | {nonce}) == len(respellings) + 1
    for name, spelling in respellings.items():
        refused = acme.wire.send(account.key, account.kid, nonce=spelling, kid=account.kid)
        assert refused.status_code == 400, (name, refused.status_code, refused.text)
        problem(refused, "badNonce", 400)
    good = acme.wire.send(account.key, account.kid, nonce=nonce, kid=account.kid)
    assert good.status_code == 200, good.text
    for name, spelling in {**respellings, "the-nonce-itself": nonce}.items():
        refused = acme.wire.send(account.key, account.kid, nonce=spelling, kid=account.kid)
        assert refused.status_code == 400, (name, refused.status_code, refused.text)
        problem(refused, "badNonce", 400)


@pytest.mark.parametrize("length", [55, 64, 65, 300, 5000])
def test_over_long_nonce_is_bad_nonce(acme: Acme, account: Account, length: int) -> None:
    nonce = acme.wire.nonce()
    longer = (nonce * (length // len(nonce) + 1))[:length]
    response = acme.wire.send(account.key, account.kid, nonce=longer, kid=account.kid)
    problem(response, "badNonce", 400)


@pytest.mark.parametrize(
    "alg",
    [["ES256"], {"ES256": True}, 256, True, None],
    ids=["list", "object", "number", "boolean", "missing"],
)
def test_alg_that_is_not_a_string_is_malformed(acme: Acme, account: Account, alg: Any) -> None:
    header = {"alg": alg} if alg is not None else {"alg": None}
    response = acme.wire.send(account.key, account.kid, kid=account.kid, header=header)
    problem(response, "malformed", 400)


@pytest.mark.parametrize(
    "header",
    [
        {"crit": ["exp"], "exp": 1},
        {"crit": ["b64"], "b64": False},
        {"b64": False},
        {"b64": True},
        {"crit": []},
        {"crit": "exp"},
    ],
    ids=["crit-unknown", "crit-b64", "b64-false", "b64-true", "crit-empty", "crit-string"],
)
def test_crit_or_b64_in_the_protected_header_is_malformed(
    acme: Acme, account: Account, header: dict[str, Any]
) -> None:
    """RFC 7515 section 4.1.11: a `crit` the server does not understand is refused; ACME
    uses no extension that needs one, nor RFC 7797's unencoded payload."""
    nonce = acme.wire.nonce()
    response = acme.wire.send(account.key, account.kid, nonce=nonce, kid=account.kid, header=header)
    problem(response, "malformed", 400)
    # Refused before anything was done: its nonce is still good.
    good = acme.wire.send(account.key, account.kid, nonce=nonce, kid=account.kid)
    assert good.status_code == 200, good.text


DEPTH = 20_000


def _deep(depth: int = DEPTH) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("where", ["body", "protected-header", "payload"])
def test_deeply_nested_json_is_malformed(acme: Acme, account: Account, where: str) -> None:
    if where == "body":
        body = ('{"protected": ' + _deep() + ', "payload": "", "signature": ""}').encode()
        problem(acme.wire.post(account.kid, body), "malformed", 400)
        return
    if where == "protected-header":
        flat = signed(account.key, account.kid, None, acme.wire.nonce(), kid=account.kid)
        header = jose.b64encode(('{"alg": "ES256", "x": ' + _deep() + "}").encode()).decode()
        problem(acme.wire.post(account.kid, dict(flat, protected=header)), "malformed", 400)
        return
    payload = ('{"contact": ' + _deep() + "}").encode()
    response = acme.wire.send(account.key, account.kid, payload, kid=account.kid)
    problem(response, "malformed", 400)


@pytest.mark.parametrize(
    "nonce",
    [None, "", "made-up", jose.b64encode(bytes(40)).decode()],
    ids=["missing", "empty", "not-base64", "not-ours"],
)
def test_nonce_not_made_here_is_bad_nonce(acme: Acme, account: Account, nonce: str | None) -> None:
    header = {"nonce": nonce} if nonce is not None else {"nonce": None}
    response = acme.wire.send(account.key, account.kid, nonce=None, kid=account.kid, header=header)
    problem(response, "badNonce", 400)


def test_new_nonce_answers_head_200_and_get_204_uncached(acme: Acme) -> None:
    head = acme.wire.http.head(acme.url("/acme/new-nonce"))
    get = acme.wire.http.get(acme.url("/acme/new-nonce"))
    assert (head.status_code, get.status_code) == (200, 204)
    for response in (head, get):
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Replay-Nonce"]
    assert head.headers["Replay-Nonce"] != get.headers["Replay-Nonce"]


def test_unknown_acme_path_and_method_are_acme_errors(acme: Acme) -> None:
    problem(acme.wire.http.get(acme.url("/acme/no-such-thing")), "malformed", 404)
    problem(acme.wire.http.get(acme.url("/acme/new-order")), "malformed", 405)


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "EC", "crv": "P-256", "x": 1, "y": 2},
        {"kty": "RSA", "n": 1, "e": [1]},
        {"kty": "EC", "crv": "P-256", "x": {"a": "b"}, "y": None},
    ],
    ids=["ec-numbers", "rsa-number-and-list", "ec-object-and-null"],
)
def test_jwk_whose_members_are_not_strings_is_bad_public_key(
    acme: Acme, jwk: dict[str, Any]
) -> None:
    response = acme.wire.send(ec_key(), acme.url("/acme/new-account"), {}, header={"jwk": jwk})
    problem(response, "badPublicKey", 400)
