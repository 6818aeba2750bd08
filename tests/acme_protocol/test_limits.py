"""Per-account ACME limits: new orders and failed validations per hour, counted for the
customer (all its ACME accounts), answered `rateLimited` (429) with Retry-After.

The limits are counted in fixed hourly windows: a test whose requests straddle the turn of
an hour starts over once with a fresh customer (they then fall in one window)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from tests.acme_protocol.conftest import Acme, Service, unique_name
from tests.acme_protocol.wire import problem
from tests.conftest import Customer

T = TypeVar("T")
ORDERS_PER_HOUR = 2


@pytest.fixture(scope="module")
def limited(
    serve: Callable[..., contextlib.AbstractContextManager[Service]],
) -> Iterator[Service]:
    """A service of its own with low limits."""
    with serve(acme_orders_per_hour=ORDERS_PER_HOUR, acme_failed_validations_per_hour=1) as s:
        yield s


@pytest.fixture
def acme(limited: Service, make_customer: Callable[..., Customer]) -> Iterator[Acme]:
    harness = Acme(limited, make_customer)
    yield harness
    harness.wire.close()


def in_one_hour(run: Callable[[], T]) -> T:
    """`run()`, again once if the hour turned while it ran."""
    for _ in range(2):
        hour = time.time() // 3600
        result = run()
        if time.time() // 3600 == hour:
            return result
    raise AssertionError("two hours turned during one test")


def order_payload(*names: str) -> dict[str, Any]:
    return {"identifiers": [{"type": "dns", "value": n} for n in names]}


def rate_limited(response: Any) -> None:
    problem(response, "rateLimited", 429)
    assert 1 <= int(response.headers["Retry-After"]) <= 3600


def test_order_past_the_hourly_limit_is_rate_limited(acme: Acme) -> None:
    def run() -> list[Any]:
        account = acme.register()
        same_customer = acme.register(account.customer)
        url = acme.url("/acme/new-order")
        answers = [
            acme.wire.send(account.key, url, order_payload(unique_name()), kid=account.kid)
            for _ in range(ORDERS_PER_HOUR + 1)
        ]
        # Another ACME account of the same customer shares its limit.
        answers.append(
            acme.wire.send(
                same_customer.key, url, order_payload(unique_name()), kid=same_customer.kid
            )
        )
        return answers

    answers = in_one_hour(run)
    assert [a.status_code for a in answers[:ORDERS_PER_HOUR]] == [201] * ORDERS_PER_HOUR
    rate_limited(answers[ORDERS_PER_HOUR])
    rate_limited(answers[ORDERS_PER_HOUR + 1])
    # Another customer is not limited by this one.
    other = acme.register()
    fresh = acme.wire.send(
        other.key, acme.url("/acme/new-order"), order_payload(unique_name()), kid=other.kid
    )
    assert fresh.status_code == 201, fresh.text


def test_after_a_failed_validation_more_challenges_and_orders_are_rate_limited(
    acme: Acme,
) -> None:
    def run() -> tuple[Any, Any, Any]:
        account = acme.register()
        first, second = unique_name("fail"), unique_name("next")
        orderr, _key = acme.order(account, [first, second])
        failing = next(a for a in orderr.authorizations if a.body.identifier.value == first)
        challb = acme.publish(account, failing, "http-01", wrong=True)
        account.client.answer_challenge(challb, challb.chall.response(account.key))
        assert acme.service.settle() >= 1
        other = next(a for a in orderr.authorizations if a.body.identifier.value == second)
        challb = acme.publish(account, other, "http-01")
        answered = acme.wire.send(account.key, challb.uri, {}, kid=account.kid)
        after = acme.wire.send(account.key, other.uri, kid=account.kid)
        order = acme.wire.send(
            account.key, acme.url("/acme/new-order"), order_payload(second), kid=account.kid
        )
        return answered, after, order

    answered, after, order = in_one_hour(run)
    rate_limited(answered)
    assert after.json()["status"] == "pending"
    assert {c["status"] for c in after.json()["challenges"]} == {"pending"}
    rate_limited(order)
