"""The CA's name policy, pure: suffixes on label boundaries, networks, deny over allow."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from core.name_check import Grant, candidates
from core.policy import DENIED, NamePolicy, Rules, in_networks, parse_networks
from tests.conftest import certificate_settings


def test_suffixes_match_on_label_boundaries() -> None:
    policy = NamePolicy.parse("", "example.com")
    assert policy.refusal_dns("example.com") == DENIED
    assert policy.refusal_dns("a.b.example.com") == DENIED
    assert policy.refusal_dns("badexample.com") is None
    assert policy.refusal_dns("example.com.evil.net") is None


def test_allow_list_admits_nothing_outside_it_and_deny_wins() -> None:
    policy = NamePolicy.parse("corp.test, 10.0.0.0/8", "secret.corp.test, 10.9.0.0/16")
    assert policy.refusal_dns("www.corp.test") is None
    assert policy.refusal_dns("corp.test") is None
    assert policy.refusal_dns("www.other.test") == DENIED
    assert policy.refusal_dns("db.secret.corp.test") == DENIED
    assert policy.refusal_dns("*.corp.test") == DENIED  # it would cover secret.corp.test
    assert policy.refusal_dns("*.www.corp.test") is None
    assert policy.refusal_ip(ipaddress.ip_address("10.1.2.3")) is None
    assert policy.refusal_ip(ipaddress.ip_address("10.9.2.3")) == DENIED
    assert policy.refusal_ip(ipaddress.ip_address("192.0.2.1")) == DENIED
    assert policy.refusal_ip(ipaddress.ip_address("::ffff:10.9.0.1")) == DENIED


@pytest.mark.parametrize("name", ["*.co.uk", "*.github.io", "*.com", "*.internal"])
def test_wildcard_directly_under_a_public_suffix_is_always_refused(name: str) -> None:
    assert NamePolicy.parse("", "").refusal_dns(name) == DENIED


@pytest.mark.parametrize("name", ["*.example.co.uk", "*.me.github.io", "www.co.uk"])
def test_wildcard_under_a_registrable_name_is_not_refused_by_the_list(name: str) -> None:
    assert NamePolicy.parse("", "").refusal_dns(name) is None


def test_ipv4_mapped_ipv6_counts_as_ipv4() -> None:
    deny = parse_networks("127.0.0.0/8, 169.254.0.0/16")
    assert in_networks(ipaddress.ip_address("::ffff:169.254.169.254"), deny)
    assert in_networks(ipaddress.ip_address("::ffff:127.0.0.2"), deny)
    assert not in_networks(ipaddress.ip_address("::1"), deny)


def test_bad_entries_are_refused_with_their_text() -> None:
    with pytest.raises(ValueError, match="not an IP network"):
        parse_networks("10.0.0.0/33")
    with pytest.raises(ValueError, match="neither a DNS suffix"):
        Rules.parse("a*b.example")


def test_coverage_exact_or_parent_with_subdomains() -> None:
    exact = Grant(None, "example.com", False)  # type: ignore[arg-type]
    wide = Grant(None, "example.com", True)  # type: ignore[arg-type]
    assert exact.covers("example.com") and not exact.covers("www.example.com")
    assert not exact.covers("*.example.com")
    assert wide.covers("a.b.example.com") and wide.covers("*.example.com")
    assert wide.covers("*.a.example.com") and not wide.covers("badexample.com")
    assert candidates("*.a.example.com") == ["a.example.com", "example.com", "com"]


def test_open_names_log_a_warning_at_start(
    database_url: str, var_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastapi.testclient import TestClient

    from certificate_api.main import create_app

    settings = certificate_settings(database_url, var_dir, name_authorization="open")
    capsys.readouterr()
    with TestClient(create_app(settings)):
        pass
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line[:1] == "{"]
    warned = [r for r in lines if "NAME_AUTHORIZATION=open" in r["message"]]
    assert [r["level"] for r in warned] == ["warning"]
