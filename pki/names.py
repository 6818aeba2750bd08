"""The one parser of names: DNS names and IP addresses as every door, list and CSR gives them.

Strict by design. Nothing is trimmed, stripped or normalised away before the check: a
control character, whitespace, an empty label or a trailing dot anywhere is refused, like any
other character outside the rules. Every pattern is matched whole (`fullmatch`): `$` also
matches before a final line feed, which once let `com\\n` pass as a label.

A DNS name is letters-digits-hyphen labels of 1-63 octets, at most 253 octets in all, at
least two labels, the rightmost of at least two characters ending in a letter (no TLD is
numeric or one letter long), with at most one leading `*.` where a wildcard is allowed.
Internationalised labels are converted with UTS 46 (non-transitional) and IDNA 2008, the
same way wherever they appear: `faß.test` is `xn--fa-hia.test`, never `fass.test`. The
result is the lower-case A-label form, which is what is stored, compared and signed.

Imports nothing of this project: the bottom of the layers.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata

import idna

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_NAME_OCTETS = 253
MAX_LABEL_OCTETS = 63
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_TOP_LABEL = re.compile(r"[a-z0-9][a-z0-9-]{0,61}[a-z]")
_IP_TEXT = re.compile(r"[0-9A-Fa-f:.]{2,45}")
# Unicode categories no name may hold: controls, format characters (soft hyphen, zero-width
# space, bidi marks), surrogates, private use, unassigned, and every kind of separator. The
# zero-width joiner and non-joiner are the exception: IDNA 2008 allows them where a script
# needs them (its CONTEXTJ rules, which the idna package checks), in a U-label and in the
# A-label that decodes to it alike.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})
_JOINERS = frozenset({"\u200c", "\u200d"})


class InvalidName(ValueError):
    """A name the CA will not certify; the message says why and names it."""


def _check_characters(text: str) -> None:
    if text.isascii():
        if not text.isprintable() or " " in text:
            raise InvalidName(f"{text!r} holds whitespace or a control character")
        return
    for char in text:
        if char.isascii() or char in _JOINERS:
            continue
        if char.isspace() or unicodedata.category(char) in _REFUSED_CATEGORIES or _vanishes(char):
            raise InvalidName(
                f"{text!r} holds {unicodedata.name(char, hex(ord(char)))}, "
                "which no name may contain"
            )


@functools.lru_cache(maxsize=4096)
def _vanishes(char: str) -> bool:
    """Whether UTS 46 maps the character to nothing (variation selectors, fillers): such a
    character would be silently dropped, so a name holding one is refused instead."""
    try:
        return idna.uts46_remap(char, std3_rules=True, transitional=False) == ""
    except (idna.IDNAError, UnicodeError):
        return False  # disallowed: the conversion refuses it with its own reason


def parse_ip(text: str) -> IpAddress:
    """An IPv4 or IPv6 address written exactly (no whitespace, no zone id), or InvalidName."""
    if not isinstance(text, str) or not _IP_TEXT.fullmatch(text):
        raise InvalidName(f"{text!r} is not a valid IPv4 or IPv6 address")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidName(f"{text!r} is not a valid IPv4 or IPv6 address") from None


def is_ip(text: str) -> bool:
    """Whether the text is an IPv4 or IPv6 address as `parse_ip` takes it."""
    try:
        parse_ip(text)
    except InvalidName:
        return False
    return True


def _a_label(label: str, name: str) -> str:
    """One label in its lower-case A-label form, checked."""
    if label.isascii():
        ascii_label = label.lower()
        if ascii_label[2:4] == "--" and not ascii_label.startswith("xn--"):
            # Hyphens in the third and fourth places are reserved for encodings (RFC 5890).
            raise InvalidName(f"{name!r}: label {label!r} has the reserved form '??--'")
        if ascii_label.startswith("xn--"):
            # An A-label must decode to a valid U-label that encodes back to itself.
            try:
                if idna.alabel(idna.ulabel(ascii_label)).decode() != ascii_label:
                    raise idna.IDNAError("not the canonical encoding of its U-label")
            except (idna.IDNAError, UnicodeError) as exc:
                raise InvalidName(f"{name!r}: {label!r} is not a valid A-label: {exc}") from None
    else:
        try:
            ascii_label = idna.encode(label, uts46=True, transitional=False).decode()
        except (idna.IDNAError, UnicodeError) as exc:
            raise InvalidName(f"{name!r} is not a valid internationalized name: {exc}") from None
    if not _LABEL.fullmatch(ascii_label):
        raise InvalidName(
            f"{name!r}: label {label!r} must be 1-63 letters, digits or hyphens, "
            "not starting or ending with a hyphen"
        )
    return ascii_label


@functools.lru_cache(maxsize=8192)
def _parse_dns(text: str, wildcard: bool, single_label: bool) -> str:
    if not text:
        raise InvalidName("empty DNS name")
    _check_characters(text)
    if text.endswith("."):
        raise InvalidName(f"{text!r}: a trailing dot is not taken, write the name without it")
    labels = text.split(".")
    is_wildcard = labels[0] == "*"
    if is_wildcard:
        if not wildcard:
            raise InvalidName(f"{text!r}: no wildcard here")
        labels = labels[1:]
        if len(labels) < 2:
            raise InvalidName(f"{text!r}: a wildcard must stand over at least two labels")
    if len(labels) < 2 and not single_label:
        raise InvalidName(f"{text!r} is not a fully qualified DNS name")
    for label in labels:
        if "*" in label:
            raise InvalidName(f"{text!r}: '*' is only allowed as the whole leftmost label")
        if not label:
            raise InvalidName(f"{text!r} has an empty label")
    ascii_labels = [_a_label(label, text) for label in labels]
    if not _TOP_LABEL.fullmatch(ascii_labels[-1]):
        raise InvalidName(
            f"{text!r}: the top-level label must be at least two characters and end in a letter"
        )
    result = ".".join((["*"] if is_wildcard else []) + ascii_labels)
    if len(result) > MAX_NAME_OCTETS:
        raise InvalidName(f"{text!r} is longer than {MAX_NAME_OCTETS} octets")
    return result


def parse_dns_name(text: str, *, wildcard: bool = True) -> str:
    """The lower-case A-label form of a fully qualified DNS name (maybe `*.`-led when
    `wildcard`), or InvalidName saying why."""
    if not isinstance(text, str):
        raise InvalidName(f"{text!r} is not a DNS name")
    return _parse_dns(text, wildcard, False)


def parse_dns_suffix(text: str) -> str:
    """A DNS suffix of a name policy: like a name, but one label (`test`) will do."""
    if not isinstance(text, str):
        raise InvalidName(f"{text!r} is not a DNS suffix")
    return _parse_dns(text, False, True)


def parse_name(text: str, *, wildcard: bool = True) -> str:
    """A DNS name or an IP address, each in its one written form (`parse_dns_name`, or the
    address as `ipaddress` writes it); InvalidName otherwise."""
    try:
        return str(parse_ip(text))
    except InvalidName:
        if isinstance(text, str) and ":" in text:
            raise  # no DNS name holds a colon: the address's reason is the one to give
    return parse_dns_name(text, wildcard=wildcard)


def is_valid_name(text: str) -> bool:
    """Whether `parse_name` takes the text exactly as it is (already in its one form)."""
    try:
        return parse_name(text) == text
    except InvalidName:
        return False
