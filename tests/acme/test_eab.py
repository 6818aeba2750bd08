"""External account binding as the server enforces it (RFC 8555 section 7.3.4), driven
through `acme`, the protocol library certbot is built on: certbot itself stops before
asking when the directory says a binding is required, so these reach the server."""

from __future__ import annotations

import base64
import secrets

import josepy as jose
import pytest
from acme import client, messages
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.acme.conftest import AcmeStack, Eab
from tests.conftest import Customer

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
    assert account.body.status == messages.STATUS_VALID
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
    assert account.body.status == messages.STATUS_VALID
    # The account answers POST-as-GET under the key it was made with.
    acme.net.account = account
    fetched = acme.query_registration(account)
    assert fetched.uri == account.uri
