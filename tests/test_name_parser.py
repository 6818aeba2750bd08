"""The one name parser (`pki.names`): properties over arbitrary text, and the spellings that
once slipped through a `$` anchor or a strip."""

from __future__ import annotations

import string
import unicodedata
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography import x509
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pkilint.pkix.general_name import DomainNameSyntaxValidator

from core.policy import NamePolicy
from pki import names

PKILINT_DNS = DomainNameSyntaxValidator()


def pkilint_takes(name: str) -> bool:
    """pkilint's own RFC 5280 preferred-name-syntax check of a dNSName (the `*.` of a
    wildcard is outside that syntax, as pkilint's PKIX layer says of every wildcard)."""
    return bool(PKILINT_DNS.validate_value(SimpleNamespace(pdu=name.removeprefix("*."))))


def has_bad_character(text: str) -> bool:
    """Whitespace, a control or format character (other than the joiners IDNA 2008 allows
    in context), or a character UTS 46 would silently drop: judged without the parser."""
    return any(
        c.isspace()
        or c in string.whitespace
        or (unicodedata.category(c)[0] in "CZ" and c not in "\u200c\u200d")
        or unicodedata.name(c, "").startswith("VARIATION SELECTOR")
        or c in "\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0"
        for c in text
    )


LDH = string.ascii_letters + string.digits + "-"
label = st.text(LDH, min_size=0, max_size=70)
# Names made of labels (mostly plausible), with hostile characters mixed in, and any text.
hostile = st.sampled_from(
    ["\n", "\r", "\t", " ", "\x00", "\u00ad", "\u200b", "\u3002", "\ufe0f", "\u034f", ".", "*"]
)
near_names = st.builds(
    lambda labels, extra, at: ".".join(labels)[:at] + extra + ".".join(labels)[at:],
    st.lists(label, min_size=1, max_size=6),
    st.text(hostile, max_size=2),
    st.integers(0, 300),
)
unicode_names = st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=4).map(".".join)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(near_names, unicode_names, st.text(max_size=300)))
@example("www.example.com\n")
@example("victim.example\n.attacker.test")
@example("a.com.")
@example(" a.com")
@example("a" * 64 + ".com")
def test_nothing_accepted_holds_a_bad_character_or_label_and_every_name_round_trips(
    text: str,
) -> None:
    try:
        parsed = names.parse_dns_name(text)
    except names.InvalidName:
        return
    assert not has_bad_character(text)
    assert not text.endswith(".")
    labels = parsed.removeprefix("*.").split(".")
    assert all(1 <= len(part) <= 63 for part in labels)
    assert len(parsed) <= 253
    assert parsed.isascii()
    assert names.parse_dns_name(parsed) == parsed  # the parsed form is a fixed point
    assert x509.DNSName(parsed).value == parsed
    assert pkilint_takes(parsed), parsed


@settings(max_examples=500, deadline=None)
@given(
    st.ip_addresses(),
    st.sampled_from(["", "\n", " ", "\t", "%", "\u00a0", "\r\n"]),
    st.integers(0, 45),
)
def test_addresses_are_written_exactly(address: Any, extra: str, at: int) -> None:
    written = str(address)
    text = written[:at] + extra + written[at:]
    if not extra:
        assert names.parse_ip(text) == address  # the canonical form is always taken
        return
    with pytest.raises(names.InvalidName):  # whitespace, a control, a zone: never
        names.parse_ip(text)


@pytest.mark.parametrize(
    "text",
    [
        "www.example.com\n",
        "www.example.com\r",
        "www.example.com\r\n",
        "victim.example\n.attacker.test",
        "paypal.com\n.attacker.test",
        " www.example.com",
        "www.example.com ",
        "www\t.example.com",
        "www.example.com.",
        "www..example.com",
        "www.exa mple.com",
        "www.example.com\x00",
        "www\u00ad.example.com",
        "www.example\u3002com",
        "*.*.example.com",
        "w*.example.com",
        "-www.example.com",
        "www-.example.com",
        "a" * 64 + ".example.com",
        ".".join(["a" * 63] * 4) + ".com",
        "example",
        "example.c",
        "example.123",
        "xn--.example.com",
        "xn--zz.example.com",
        "ab--c.example.com",
        "exa\ufe0fmple.com",
        "a\u115fb.com",
        "a\u200b.com",
    ],
)
def test_refused_spellings(text: str) -> None:
    with pytest.raises(names.InvalidName):
        names.parse_dns_name(text)


@pytest.mark.parametrize(
    "text", ["1.2.3.4\n", " 1.2.3.4", "1.2.3.4 ", "::1\n", "fe80::1%eth0", "01.2.3.4", "1.2.3"]
)
def test_refused_addresses(text: str) -> None:
    with pytest.raises(names.InvalidName):
        names.parse_ip(text)


def test_one_idna_conversion_uts46_non_transitional() -> None:
    assert names.parse_dns_name("faß.test") == "xn--fa-hia.test"
    assert names.parse_dns_name("FAß.test") == "xn--fa-hia.test"
    assert names.parse_dns_name("xn--fa-hia.test") == "xn--fa-hia.test"
    assert names.parse_dns_name("*.München.DE") == "*.xn--mnchen-3ya.de"
    assert names.parse_dns_suffix("test") == "test"
    # A joiner where its script needs it: the U-label and its A-label are one name.
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.ir"
    assert names.parse_dns_name(persian) == names.parse_dns_name("xn--mgbn2ecje63gr19l.ir")


def test_the_policy_converts_its_entries_as_requests_are() -> None:
    policy = NamePolicy.parse("", "faß.test")
    assert policy.refusal_dns(names.parse_dns_name("faß.test")) == "denied by policy"
    assert policy.refusal_dns(names.parse_dns_name("xn--fa-hia.test")) == "denied by policy"
    assert policy.refusal_dns(names.parse_dns_name("www.xn--fa-hia.test")) == "denied by policy"
    assert policy.refusal_dns("fass.test") is None


@pytest.mark.parametrize("entry", ["bad.test\n", "bad .test", "bad.test.", "bad..test"])
def test_a_policy_entry_is_parsed_as_strictly_as_a_name(entry: str) -> None:
    with pytest.raises(ValueError, match="neither a DNS suffix nor an IP network"):
        NamePolicy.parse("", entry)
