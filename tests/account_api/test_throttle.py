"""Login throttling per (email, client address) and per client address, counted atomically,
against the real server: clients bound to different loopback addresses are different clients."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.conftest import TEST_PROXY, LiveServices, unique_email

PASSWORD = "throttle-passw0rd"


@contextmanager
def client_from(live: LiveServices, address: str) -> Iterator[httpx.Client]:
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=live.account_url, transport=transport, timeout=30) as client:
        yield client


def sign_up(live: LiveServices) -> str:
    email = unique_email("throttle")
    with client_from(live, "127.0.0.1") as client:
        created = client.post(
            "/api/accounts", json={"email": email, "password": PASSWORD, "name": "Owner"}
        )
    assert created.status_code == 201, created.text
    return email


def login(client: httpx.Client, email: str, password: str, **headers: str) -> httpx.Response:
    return client.post(
        "/api/auth/token", json={"email": email, "password": password}, headers=headers
    )


def test_failures_from_another_address_never_lock_the_owner_out(live: LiveServices) -> None:
    email = sign_up(live)
    with client_from(live, "127.0.0.2") as attacker:
        assert [login(attacker, email, "guess").status_code for _ in range(5)] == [401] * 5
        throttled = login(attacker, email, "guess")
        assert throttled.status_code == 429
        assert 1 <= int(throttled.headers["Retry-After"]) <= 900
        # From the attacker's address even the right password waits (no oracle).
        assert login(attacker, email, PASSWORD).status_code == 429
    with client_from(live, "127.0.0.1") as owner:
        assert login(owner, email, PASSWORD).status_code == 200


def test_parallel_wrong_guesses_are_checked_at_most_the_limit_times(live: LiveServices) -> None:
    email = sign_up(live)
    start = threading.Barrier(12)
    statuses: list[int] = []

    def guess(number: int) -> None:
        with client_from(live, "127.0.0.5") as client:
            start.wait()
            statuses.append(login(client, email, f"guess {number}").status_code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [401] * 5 + [429] * 7


def test_failures_from_one_address_over_many_emails_throttle_that_address(
    live: LiveServices,
) -> None:
    email = sign_up(live)
    with client_from(live, "127.0.0.6") as sprayer:
        # 50 failures (LOGIN_MAX_FAILURES_PER_CLIENT), ten emails, five each.
        for _ in range(5):
            for target in [unique_email("spray") for _ in range(10)]:
                assert login(sprayer, target, "guess").status_code == 401
        assert login(sprayer, unique_email("spray"), "guess").status_code == 429
        assert login(sprayer, email, PASSWORD).status_code == 429
    with client_from(live, "127.0.0.1") as owner:
        assert login(owner, email, PASSWORD).status_code == 200


def test_a_trusted_proxys_forwarded_address_is_the_client(live: LiveServices) -> None:
    email = sign_up(live)
    with client_from(live, TEST_PROXY) as proxy:
        for _ in range(5):
            forwarded = login(proxy, email, "guess", **{"X-Forwarded-For": "198.51.100.7"})
            assert forwarded.status_code == 401
        assert (
            login(proxy, email, "guess", **{"X-Forwarded-For": "198.51.100.7"}).status_code == 429
        )
        # What the client itself wrote further left is not believed: the proxy's entry is.
        spoofed = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}
        assert login(proxy, email, PASSWORD, **spoofed).status_code == 429
        # The owner behind the same proxy, from another address, is not locked out.
        owner = {"X-Forwarded-For": "198.51.100.8"}
        assert login(proxy, email, PASSWORD, **owner).status_code == 200


def test_an_untrusted_peers_forwarded_for_is_ignored(live: LiveServices) -> None:
    email = sign_up(live)
    with client_from(live, "127.0.0.7") as client:
        for n in range(5):
            made_up = {"X-Forwarded-For": f"198.51.100.{n + 20}"}
            assert login(client, email, "guess", **made_up).status_code == 401
        fresh = {"X-Forwarded-For": "198.51.100.99"}
        assert login(client, email, "guess", **fresh).status_code == 429


def test_wrong_current_passwords_count_as_failed_logins(accounts: Any, make_customer: Any) -> None:
    customer = make_customer()
    url = "/api/accounts/me/password"
    body = {"current_password": "guess", "new_password": "another passw0rd"}
    for _ in range(5):
        assert accounts.post(url, json=body, headers=customer.auth).status_code == 403
    assert accounts.post(url, json=body, headers=customer.auth).status_code == 429
    right = {**body, "current_password": customer.password}
    assert accounts.post(url, json=right, headers=customer.auth).status_code == 429


def test_a_reservation_removed_right_after_its_commit_still_answers(engine: Any) -> None:
    """Under concurrent logins from one address, another request's right password can delete
    this attempt's reservation the moment it commits (`succeeded`); reading the record's id
    after the commit then raised, a 500 for a login that was merely racing."""
    from datetime import timedelta

    from sqlalchemy import delete, event
    from sqlalchemy.orm import Session

    from account_api.auth import throttle
    from schema.accounts import LoginFailure
    from schema.base import utcnow

    email_key, client = unique_email(), "192.0.2.55"
    limits = throttle.Limits(window=timedelta(minutes=15), per_email_and_client=5, per_client=50)
    with Session(engine) as session:

        @event.listens_for(session, "after_commit")
        def another_login_succeeds(_session: Session) -> None:
            with engine.begin() as conn:
                conn.execute(
                    delete(LoginFailure).where(
                        LoginFailure.email_key == email_key, LoginFailure.client == client
                    )
                )

        attempt_id = throttle.reserve(session, email_key, client, utcnow(), limits)
    assert attempt_id is not None
