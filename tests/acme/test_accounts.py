"""ACME accounts as the server keeps them, driven through `acme`, the protocol library
certbot is built on: external account binding (RFC 8555 section 7.3.4; certbot itself stops
before asking when the directory says a binding is required, so these reach the server),
key types, contact update, deactivation, and nonces."""

from __future__ import annotations

import base64
import json
import secrets

import httpx
import josepy as jose
import pytest
from acme import client, messages
from acme import jws as acme_jws
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.acme.conftest import AcmeStack, Eab
from tests.conftest import Customer, unique_email

ACME_ERROR = "urn:ietf:params:acme:error:"


def connect(stack: AcmeStack, key: jose.JWK, alg: jose.JWASignature) -> client.ClientV2:
    net = client.ClientNetwork(key, alg=alg, user_agent="tessera-tests")
    return client.ClientV2(client.ClientV2.get_directory(stack.directory_url, net), net)


def rsa_client(stack: AcmeStack) -> tuple[client.ClientV2, jose.JWK]:
    key = jose.JWKRSA(key=rsa.generate_private_key(65537, 2048))
    return connect(stack, key, jose.RS256), key


def register(
    acme: client.ClientV2, key: jose.JWK, email: str, key_id: str, hmac_key: str
) -> messages.RegistrationResource:
    binding = messages.ExternalAccountBinding.from_data(
        account_public_key=key.public_key(),
        kid=key_id,
        hmac_key=hmac_key,
        directory=acme.directory,
    )
    return acme.new_account(
        messages.NewRegistration.from_data(
            email=email, terms_of_service_agreed=True, external_account_binding=binding
        )
    )


def test_the_directory_requires_a_binding(acme_live: AcmeStack) -> None:
    acme, _ = rsa_client(acme_live)
    assert acme.directory.meta.external_account_required is True


def test_an_account_without_a_binding_is_refused(
    acme_live: AcmeStack, acme_customer: Customer
) -> None:
    acme, _ = rsa_client(acme_live)
    with pytest.raises(messages.Error) as refused:
        acme.new_account(
            messages.NewRegistration.from_data(
                email=acme_customer.email, terms_of_service_agreed=True
            )
        )
    assert refused.value.typ == ACME_ERROR + "externalAccountRequired", refused.value


def test_a_binding_with_the_wrong_mac_key_is_refused(
    acme_live: AcmeStack, acme_customer: Customer, eab: Eab
) -> None:
    key_id, _ = eab(acme_customer)
    wrong = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    acme, key = rsa_client(acme_live)
    with pytest.raises(messages.Error) as refused:
        register(acme, key, acme_customer.email, key_id, wrong)
    assert (refused.value.typ or "").startswith(ACME_ERROR), refused.value


def test_an_unknown_key_id_is_refused(acme_live: AcmeStack, acme_customer: Customer) -> None:
    hmac_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    acme, key = rsa_client(acme_live)
    with pytest.raises(messages.Error) as refused:
        register(acme, key, acme_customer.email, "no-such-key-id", hmac_key)
    assert (refused.value.typ or "").startswith(ACME_ERROR), refused.value


def test_a_binding_is_good_for_one_account(
    acme_live: AcmeStack, acme_customer: Customer, eab: Eab
) -> None:
    key_id, hmac_key = eab(acme_customer)
    acme, key = rsa_client(acme_live)
    account = register(acme, key, acme_customer.email, key_id, hmac_key)
    assert account.body.status == "valid"
    assert account.body.emails == (acme_customer.email,)

    other, other_key = rsa_client(acme_live)
    with pytest.raises(messages.Error) as refused:
        register(other, other_key, acme_customer.email, key_id, hmac_key)
    assert (refused.value.typ or "").startswith(ACME_ERROR), refused.value


@pytest.mark.parametrize(
    ("curve", "alg"), [(ec.SECP256R1(), jose.ES256), (ec.SECP384R1(), jose.ES384)]
)
def test_ec_account_keys(
    acme_live: AcmeStack,
    acme_customer: Customer,
    eab: Eab,
    curve: ec.EllipticCurve,
    alg: jose.JWASignature,
) -> None:
    key = jose.JWKEC(key=ec.generate_private_key(curve))
    acme = connect(acme_live, key, alg)
    account = register(acme, key, acme_customer.email, *eab(acme_customer))
    assert account.body.status == "valid"
    # The account answers POST-as-GET under the key it was made with.
    acme.net.account = account
    fetched = acme.query_registration(account)
    assert fetched.uri == account.uri


def test_contact_update(acme_live: AcmeStack, acme_customer: Customer, eab: Eab) -> None:
    acme, key = rsa_client(acme_live)
    account = register(acme, key, acme_customer.email, *eab(acme_customer))
    acme.net.account = account
    other = unique_email("contact")
    # The account object as the server sent it, contact changed: its "status": "valid" goes
    # back too, which the server must ignore (RFC 8555 section 7.3.2).
    updated = acme.update_registration(account, account.body.update(contact=(f"mailto:{other}",)))
    assert updated.body.emails == (other,)
    assert acme.query_registration(updated).body.emails == (other,)


def test_deactivation(acme_live: AcmeStack, acme_customer: Customer, eab: Eab) -> None:
    acme, key = rsa_client(acme_live)
    account = register(acme, key, acme_customer.email, *eab(acme_customer))
    acme.net.account = account
    gone = acme.deactivate_registration(account)
    assert gone.body.status == "deactivated"
    # RFC 8555 section 7.3.6: nothing signed by a deactivated account is accepted.
    with pytest.raises(messages.Error) as refused:
        acme.query_registration(gone)
    assert refused.value.typ == ACME_ERROR + "unauthorized", refused.value


def test_nonces(acme_live: AcmeStack) -> None:
    url = f"{acme_live.certificate_url}/acme/new-nonce"
    head, get = httpx.head(url), httpx.get(url)
    assert (head.status_code, get.status_code) == (200, 204)
    for response in (head, get):
        assert response.headers["replay-nonce"], response.headers
        assert "no-store" in response.headers["cache-control"]
    assert head.headers["replay-nonce"] != get.headers["replay-nonce"]


def test_a_nonce_is_good_once(acme_live: AcmeStack, acme_customer: Customer, eab: Eab) -> None:
    acme, key = rsa_client(acme_live)
    account = register(acme, key, acme_customer.email, *eab(acme_customer))
    nonce = httpx.head(f"{acme_live.certificate_url}/acme/new-nonce").headers["replay-nonce"]

    def post_as_get() -> httpx.Response:
        body = acme_jws.JWS.sign(
            b"",
            key=key,
            alg=jose.RS256,
            nonce=jose.b64decode(nonce),
            url=account.uri,
            kid=account.uri,
        )
        return httpx.post(
            account.uri,
            content=body.json_dumps().encode(),
            headers={"content-type": "application/jose+json"},
        )

    first, again = post_as_get(), post_as_get()
    assert first.status_code == 200, first.text
    assert again.status_code == 400, again.text
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["type"] == ACME_ERROR + "badNonce"
    assert again.headers["replay-nonce"]  # errors carry one too, to try again with


def signed_post(
    url: str, payload: bytes, key: jose.JWK, alg: jose.JWASignature, kid: str
) -> httpx.Response:
    """A POST signed by hand (flattened JWS with a fresh nonce), for what `acme` lacks."""
    nonce = httpx.head(url.rsplit("/acme/", 1)[0] + "/acme/new-nonce").headers["replay-nonce"]
    body = acme_jws.JWS.sign(
        payload, key=key, alg=alg, nonce=jose.b64decode(nonce), url=url, kid=kid
    )
    return httpx.post(
        url, content=body.json_dumps().encode(), headers={"content-type": "application/jose+json"}
    )


def test_key_rollover(acme_live: AcmeStack, acme_customer: Customer, eab: Eab) -> None:
    acme, old_key = rsa_client(acme_live)
    account = register(acme, old_key, acme_customer.email, *eab(acme_customer))
    key_change = acme.directory["keyChange"]
    new_key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    # RFC 8555 section 7.3.5: the inner JWS, by the new key (its "jwk", no nonce), over
    # {"account", "oldKey"}; the outer one by the account's present key.
    inner = acme_jws.JWS.sign(
        json.dumps(
            {"account": account.uri, "oldKey": old_key.public_key().to_partial_json()}
        ).encode(),
        key=new_key,
        alg=jose.ES256,
        nonce=None,
        url=key_change,
    )
    changed = signed_post(key_change, inner.json_dumps().encode(), old_key, jose.RS256, account.uri)
    assert changed.status_code == 200, changed.text

    as_new = signed_post(account.uri, b"", new_key, jose.ES256, account.uri)
    assert as_new.status_code == 200, as_new.text
    as_old = signed_post(account.uri, b"", old_key, jose.RS256, account.uri)
    assert 400 <= as_old.status_code < 500, as_old.text  # the old key no longer signs for it
    assert as_old.json()["type"].startswith(ACME_ERROR), as_old.text
