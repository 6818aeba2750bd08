"""/metrics stays bounded whatever methods and paths clients make up."""

from __future__ import annotations

import contextlib
import random
import re
import string

import httpx
import pytest

from tests.conftest import LiveServices

SAMPLE = re.compile(r"^http_requests_total\{(?P<labels>[^}]*)\}", re.MULTILINE)
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _label_values(metrics_text: str, service: str) -> dict[str, set[str]]:
    """Each label's distinct values among the service's request counters."""
    values: dict[str, set[str]] = {}
    for match in SAMPLE.finditer(metrics_text):
        labels = dict(LABEL.findall(match.group("labels")))
        if labels.get("service") != service:
            continue
        for name, value in labels.items():
            values.setdefault(name, set()).add(value)
    return values


def _made_up(rng: random.Random, length: int) -> str:
    return "".join(rng.choices(string.ascii_uppercase, k=length))


@pytest.mark.parametrize("service", ["account", "certificate"])
def test_made_up_methods_and_paths_do_not_grow_the_metrics(
    live: LiveServices, service: str
) -> None:
    base = live.account_url if service == "account" else live.certificate_url
    rng = random.Random(1312)
    with httpx.Client(base_url=base, timeout=10) as client:
        for _ in range(200):
            method = _made_up(rng, rng.randint(3, 12))
            path = f"/{_made_up(rng, 8).lower()}/{rng.randint(0, 10**9)}"
            # A server may refuse a method it cannot parse: that is no time series either.
            with contextlib.suppress(httpx.HTTPError):
                client.request(method, path)
            client.request(rng.choice(["GET", "POST", "DELETE"]), path)
        text = client.get("/metrics").text
    values = _label_values(text, service)
    assert values, "no request counters"
    assert values["method"] <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "unmatched" in values["route"]
    assert all(route == "unmatched" or route.startswith("/") for route in values["route"])
    # Route templates only: a handful, whatever the 400 paths above were.
    assert len(values["route"]) < 40, sorted(values["route"])
