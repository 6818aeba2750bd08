"""ACME accounts (RFC 8555 section 7.3): registration only with a good external account
binding, finding an account by its key, contact update, deactivation, key rollover, and
the customer's deletion ending its ACME accounts."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import josepy as jose
import pytest
from acme import errors as acme_errors
from acme import messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from sqlalchemy import update

from schema.acme import AcmeEabKey
from schema.base import utcnow
from tests.acme_protocol.conftest import Account, Acme, ocsp_status, unique_name
from tests.acme_protocol.wire import (
    ACME_ERROR,
    ec_key,
    library_client,
    new_registration,
    problem,
    public_jwk,
    signed,
)


def binding(acme: Acme, key: jose.JWK, eab: dict[str, str], **changes: Any) -> dict[str, Any]:
    """The externalAccountBinding member for `key` (certbot's construction), optionally for
    another `account_key`, `hmac_key` or `url`."""
    client = library_client(acme.base, key)
    directory = client.directory
    if "url" in changes:
        directory = messages.Directory.from_json(
            dict(directory.to_partial_json(), newAccount=changes["url"])
        )
    signed_key = changes.get("account_key", key)
    return messages.ExternalAccountBinding.from_data(
        account_public_key=signed_key.public_key(),
        kid=changes.get("key_id", eab["key_id"]),
        hmac_key=changes.get("hmac_key", eab["hmac_key"]),
        directory=directory,
    )


def new_account(acme: Acme, key: jose.JWK, payload: dict[str, Any]) -> Any:
    """A raw newAccount request signed by `key` (jwk)."""
    return acme.wire.send(key, acme.url("/acme/new-account"), payload)


def test_new_account_without_eab_is_external_account_required(acme: Acme) -> None:
    key = ec_key()
    response = new_account(acme, key, {"termsOfServiceAgreed": True})
    problem(response, "externalAccountRequired", 401)
    client = library_client(acme.base, key)
    assert client.external_account_required()
    with pytest.raises(messages.Error) as raised:
        client.new_account(new_registration(client, None))
    assert raised.value.code == "externalAccountRequired"


def test_eab_registers_once_and_its_key_is_then_used(acme: Acme) -> None:
    customer = acme.make_customer()
    eab = acme.eab(customer)
    first = ec_key()
    created = new_account(acme, first, {"externalAccountBinding": binding(acme, first, eab)})
    assert created.status_code == 201, created.text
    assert created.headers["Location"].startswith(acme.url("/acme/acct/"))
    assert created.json()["status"] == "valid"
    second = ec_key()
    again = new_account(acme, second, {"externalAccountBinding": binding(acme, second, eab)})
    problem(again, "unauthorized", 403)


def test_one_eab_raced_by_many_keys_registers_one_account(acme: Acme) -> None:
    eab = acme.eab(acme.make_customer())
    keys = [ec_key() for _ in range(6)]
    requests = [(key, {"externalAccountBinding": binding(acme, key, eab)}) for key in keys]
    with ThreadPoolExecutor(len(keys)) as pool:
        answers = list(pool.map(lambda r: new_account(acme, *r), requests))
    assert sorted(a.status_code for a in answers) == [201] + [403] * (len(keys) - 1)
    for refused in (a for a in answers if a.status_code == 403):
        problem(refused, "unauthorized", 403)


def test_expired_eab_is_unauthorized(acme: Acme) -> None:
    eab = acme.eab(acme.make_customer())
    with acme.service.engine.begin() as conn:
        conn.execute(
            update(AcmeEabKey)
            .where(AcmeEabKey.key_id == eab["key_id"])
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    key = ec_key()
    response = new_account(acme, key, {"externalAccountBinding": binding(acme, key, eab)})
    body = problem(response, "unauthorized", 403)
    assert "expired" in body["detail"]


def test_eab_over_another_key_is_malformed_and_leaves_the_eab_usable(acme: Acme) -> None:
    eab = acme.eab(acme.make_customer())
    key, other = ec_key(), ec_key()
    wrong = binding(acme, key, eab, account_key=other)
    problem(new_account(acme, key, {"externalAccountBinding": wrong}), "malformed", 400)
    right = new_account(acme, key, {"externalAccountBinding": binding(acme, key, eab)})
    assert right.status_code == 201, right.text


def test_eab_with_a_wrong_hmac_is_unauthorized(acme: Acme) -> None:
    eab = acme.eab(acme.make_customer())
    key = ec_key()
    forged = binding(acme, key, eab, hmac_key=jose.b64encode(secrets.token_bytes(32)).decode())
    problem(new_account(acme, key, {"externalAccountBinding": forged}), "unauthorized", 403)
    right = new_account(acme, key, {"externalAccountBinding": binding(acme, key, eab)})
    assert right.status_code == 201, right.text


def test_eab_with_an_unknown_key_id_is_unauthorized(acme: Acme) -> None:
    eab = acme.eab(acme.make_customer())
    key = ec_key()
    unknown = binding(acme, key, eab, key_id="no-such-key-id")
    problem(new_account(acme, key, {"externalAccountBinding": unknown}), "unauthorized", 403)


def test_eab_for_another_url_is_malformed(acme: Acme) -> None:
    eab = acme.eab(acme.make_customer())
    key = ec_key()
    elsewhere = binding(acme, key, eab, url=acme.url("/acme/new-order"))
    problem(new_account(acme, key, {"externalAccountBinding": elsewhere}), "malformed", 400)


def test_eab_that_is_no_jws_is_malformed(acme: Acme) -> None:
    key = ec_key()
    response = new_account(acme, key, {"externalAccountBinding": {"kid": "x"}})
    problem(response, "malformed", 400)


def test_eab_key_needs_the_customers_token(acme: Acme) -> None:
    response = acme.wire.http.post(acme.url("/api/acme/eab"))
    assert response.status_code == 401
    made = acme.eab(acme.make_customer())
    assert len(jose.b64decode(made["hmac_key"])) == 32
    assert "=" not in made["hmac_key"]


def test_only_return_existing_for_an_unknown_key_is_account_does_not_exist(acme: Acme) -> None:
    response = new_account(acme, ec_key(), {"onlyReturnExisting": True})
    problem(response, "accountDoesNotExist", 400)


def test_existing_key_returns_200_with_the_same_location(acme: Acme) -> None:
    account = acme.register()
    found = new_account(acme, account.key, {"onlyReturnExisting": True})
    assert found.status_code == 200, found.text
    assert found.headers["Location"] == account.kid
    # A full newAccount with the same key (no EAB needed: nothing is made) finds it too.
    again = new_account(acme, account.key, {"termsOfServiceAgreed": True})
    assert (again.status_code, again.headers["Location"]) == (200, account.kid)
    client = library_client(acme.base, account.key)
    with pytest.raises(acme_errors.ConflictError) as raised:
        client.new_account(new_registration(client, acme.eab(account.customer)))
    assert raised.value.location == account.kid


def test_new_account_signed_with_a_kid_is_malformed(acme: Acme) -> None:
    account = acme.register()
    url = acme.url("/acme/new-account")
    response = acme.wire.send(account.key, url, {"onlyReturnExisting": True}, kid=account.kid)
    problem(response, "malformed", 400)


def test_contact_update(acme: Acme) -> None:
    account = acme.register()
    wanted = ("mailto:ops@example.com", "mailto:oncall@example.com")
    updated = account.client.update_registration(
        account.regr, account.regr.body.update(contact=wanted)
    )
    assert tuple(updated.body.contact) == wanted
    shown = acme.wire.send(account.key, account.kid, kid=account.kid)
    assert shown.json()["contact"] == list(wanted)


def test_status_other_than_deactivated_is_ignored(acme: Acme) -> None:
    # RFC 8555 section 7.3.2: the server ignores updates of "status" except deactivation.
    account = acme.register()
    same = acme.wire.send(account.key, account.kid, {"status": "valid"}, kid=account.kid)
    assert (same.status_code, same.json()["status"]) == (200, "valid")
    revoked = acme.wire.send(account.key, account.kid, {"status": "revoked"}, kid=account.kid)
    assert (revoked.status_code, revoked.json()["status"]) == (200, "valid")
    wrong_type = acme.wire.send(account.key, account.kid, {"status": 1}, kid=account.kid)
    problem(wrong_type, "malformed", 400)
    assert acme.wire.send(account.key, account.kid, kid=account.kid).json()["status"] == "valid"


@pytest.mark.parametrize(
    ("contact", "kind"),
    [
        (["tel:+15555550100"], "unsupportedContact"),
        (["mailto:not-an-address"], "invalidContact"),
        (["mailto:a@b.c\n"], "invalidContact"),
        (["mailto:ops@example.com\nBcc: x@example.com"], "invalidContact"),
        ("mailto:ops@example.com", "malformed"),
    ],
)
def test_bad_contact_is_refused(acme: Acme, contact: Any, kind: str) -> None:
    account = acme.register()
    response = acme.wire.send(account.key, account.kid, {"contact": contact}, kid=account.kid)
    problem(response, kind, 400)


def test_another_accounts_url_is_unauthorized(acme: Acme) -> None:
    mine, theirs = acme.register(), acme.register()
    response = acme.wire.send(mine.key, theirs.kid, kid=mine.kid)
    problem(response, "unauthorized", 403)
    changed = acme.wire.send(mine.key, theirs.kid, {"status": "deactivated"}, kid=mine.kid)
    problem(changed, "unauthorized", 403)
    assert acme.wire.send(theirs.key, theirs.kid, kid=theirs.kid).json()["status"] == "valid"


def test_deactivated_account_is_unauthorized_afterwards(acme: Acme) -> None:
    account = acme.register()
    done = account.client.deactivate_registration(account.regr)
    assert done.body.status == "deactivated"
    read = acme.wire.send(account.key, account.kid, kid=account.kid)
    problem(read, "unauthorized", 403)
    order = acme.wire.send(
        account.key,
        acme.url("/acme/new-order"),
        {"identifiers": [{"type": "dns", "value": "x.test"}]},
        kid=account.kid,
    )
    problem(order, "unauthorized", 403)
    found = new_account(acme, account.key, {"onlyReturnExisting": True})
    problem(found, "unauthorized", 403)


def key_change(acme: Acme, account: Account, new: jose.JWK) -> Any:
    """A raw keyChange (RFC 8555 section 7.3.5) from the account's key to `new`: the outer
    JWS by the old key (kid), the inner by the new one (jwk, no nonce)."""
    url = acme.url("/acme/key-change")
    payload = {"account": account.kid, "oldKey": public_jwk(account.key)}
    inner = signed(new, url, payload, None)
    return acme.wire.send(account.key, url, inner, kid=account.kid)


def test_key_rollover(acme: Acme) -> None:
    account = acme.register()
    new = ec_key()
    changed = key_change(acme, account, new)
    assert changed.status_code == 200, changed.text
    old = acme.wire.send(account.key, account.kid, kid=account.kid)
    problem(old, "malformed", 400)
    current = acme.wire.send(new, account.kid, kid=account.kid)
    assert current.status_code == 200, current.text
    found = new_account(acme, new, {"onlyReturnExisting": True})
    assert (found.status_code, found.headers["Location"]) == (200, account.kid)
    problem(new_account(acme, account.key, {"onlyReturnExisting": True}), "accountDoesNotExist")


def test_key_change_to_another_accounts_key_is_409_with_its_location(acme: Acme) -> None:
    account, other = acme.register(), acme.register()
    response = key_change(acme, account, other.key)
    assert response.status_code == 409, response.text
    assert response.headers["Location"] == other.kid
    assert response.headers["Replay-Nonce"]
    # RFC 8555 names no error type for this; Boulder's `conflict` (Pebble: `malformed`).
    assert response.json()["type"] in (ACME_ERROR + "conflict", ACME_ERROR + "malformed")
    still = acme.wire.send(account.key, account.kid, kid=account.kid)
    assert still.status_code == 200, still.text


def test_key_change_signed_inside_by_another_key_is_malformed(acme: Acme) -> None:
    account = acme.register()
    new, impostor = ec_key(), ec_key()
    url = acme.url("/acme/key-change")
    payload = {"account": account.kid, "oldKey": public_jwk(account.key)}
    inner = signed(impostor, url, payload, None, header={"jwk": public_jwk(new)})
    response = acme.wire.send(account.key, url, inner, kid=account.kid)
    problem(response, "malformed", 400)
    assert acme.wire.send(account.key, account.kid, kid=account.kid).status_code == 200


@pytest.mark.parametrize("fault", ["old-key", "account", "url"])
def test_key_change_with_a_wrong_inner_member_is_malformed(acme: Acme, fault: str) -> None:
    account = acme.register()
    new = ec_key()
    url = acme.url("/acme/key-change")
    payload = {"account": account.kid, "oldKey": public_jwk(account.key)}
    inner_url = url
    if fault == "old-key":
        payload["oldKey"] = public_jwk(ec_key())
    elif fault == "account":
        payload["account"] = acme.register().kid
    else:
        inner_url = acme.url("/acme/new-account")
    inner = signed(new, inner_url, payload, None)
    problem(acme.wire.send(account.key, url, inner, kid=account.kid), "malformed", 400)
    assert acme.wire.send(account.key, account.kid, kid=account.kid).status_code == 200


def test_deleting_the_customer_deactivates_its_acme_accounts(acme: Acme, accounts: Any) -> None:
    account = acme.register()
    eab = acme.eab(account.customer)
    name = unique_name("gone")
    acme.grant(account.customer, name)
    issued = acme.issue(account, [name])
    gone = accounts.delete(f"/api/accounts/{account.customer.id}", headers=account.customer.auth)
    assert gone.status_code == 204, gone.get_data(as_text=True)
    problem(acme.wire.send(account.key, account.kid, kid=account.kid), "unauthorized", 403)
    order = acme.wire.send(
        account.key,
        acme.url("/acme/new-order"),
        {"identifiers": [{"type": "dns", "value": "x.test"}]},
        kid=account.kid,
    )
    problem(order, "unauthorized", 403)
    # A binding made before the deletion registers nothing afterwards.
    late = ec_key()
    response = new_account(acme, late, {"externalAccountBinding": binding(acme, late, eab)})
    problem(response, "unauthorized", 403)
    # Its certificates were revoked with it (cessationOfOperation).
    answer = ocsp_status(acme, issued)
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason == x509.ReasonFlags.cessation_of_operation
    certificate = jose.b64encode(issued.leaf.public_bytes(serialization.Encoding.DER)).decode()
    by_key = acme.wire.send(
        jose.JWKEC(key=issued.key), acme.url("/acme/revoke-cert"), {"certificate": certificate}
    )
    problem(by_key, "alreadyRevoked", 400)
