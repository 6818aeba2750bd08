"""The JWS every ACME POST is (RFC 8555 section 6.2): flattened, everything protected,
`jwk` xor `kid`, the request's own `url`, a signature that verifies by an account algorithm,
`application/jose+json`, a nonce good once. Each fault has its ACME error, with a fresh
Replay-Nonce and never a 5xx."""

from __future__ import annotations

import hashlib
import hmac
from concurrent.futures import ThreadPoolExecutor

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


def test_nonce_of_a_refused_request_is_used_up(acme: Acme, account: Account) -> None:
    nonce = acme.wire.nonce()
    refused = acme.wire.send(ec_key(), account.kid, nonce=nonce, kid=account.kid)
    problem(refused, "malformed")
    again = acme.wire.send(account.key, account.kid, nonce=nonce, kid=account.kid)
    problem(again, "badNonce", 400)


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
