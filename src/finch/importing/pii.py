"""Personal identifiers scrubbed from imported text: each kind a documented pattern, and a validator where the
kind has a checksum, so ordinary numbers (dates, prices, versions, times, quantities) are left alone.

Microsoft Presidio was considered: it needs spaCy and a language model that spaCy downloads at first use, which an
offline machine cannot do; these five kinds are found as reliably by their shapes and checksums.

| kind  | token   | pattern                                                        | validator                      |
|-------|---------|----------------------------------------------------------------|--------------------------------|
| email | [EMAIL] | local@domain.tld                                               | -                              |
| iban  | [IBAN]  | 2 letters, 2 check digits, letters/digits in groups of 4       | length 15-34, mod 97           |
| card  | [CARD]  | 13-19 digits: 4-4-4-4(-3), 4-6-5 or 4-6-4 groups, or none      | issuer prefix and length, Luhn |
| ip    | [IP]    | dotted quad; colon-separated hex groups (2 colons or more)     | ipaddress parses it            |
| phone | [PHONE] | +country code ...; (NNN) NNN-NNNN; NNN-NNN-NNNN; 0N.. NNN NNNN | 7-15 digits                    |

A dotted quad written right after "v" or "version" is a version number, not an address. Phone numbers need a
leading +, a trunk 0, parentheses or the North American 3-3-4 grouping: a bare run of digits could be anything.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable

TOKENS = {"email": "[EMAIL]", "iban": "[IBAN]", "card": "[CARD]", "ip": "[IP]", "phone": "[PHONE]"}

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_CARD = re.compile(
    r"(?<![\d.,-])(?:"
    r"\d{4}([ -]?)\d{4}\1\d{4}\1\d{4}(?:\1\d{3})?"  # 4-4-4-4 and 4-4-4-4-3, one separator throughout
    r"|\d{4}([ -]?)\d{6}\2\d{4,5}"  # 4-6-5 (American Express), 4-6-4 (Diners Club)
    r"|\d{13,19}"
    r")(?![\d.,-]?\d)"
)
_IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.]*\d)")
_IPV6 = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:]|\.\d)")
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}"  # international: +44 20 7946 0958, +1 (415) 555-0199
    r"|\(\d{3}\) ?\d{3}[ .-]\d{4}"  # (415) 555-0199
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 415-555-0199
    r"|0[1-9]\d{1,3}[ -]\d{3,4}[ -]?\d{3,4}"  # national with a trunk 0: 030 1234 5678, 020 7946 0958
    r")(?![\w-]|\.\d)"
)
_VERSION = re.compile(r"(?:\bv|\bversion\s+)$", re.IGNORECASE)
# (issuer prefix, card lengths): Visa, Mastercard, American Express, Diners Club, Discover, JCB
_CARD_ISSUERS = (
    (re.compile(r"4"), (13, 16, 19)),
    (re.compile(r"5[1-5]|2(?:22[1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)"), (16,)),
    (re.compile(r"3[47]"), (15,)),
    (re.compile(r"3(?:0[0-5]|[68])"), (14, 16)),
    (re.compile(r"6(?:011|5|4[4-9])"), (16, 17, 18, 19)),
    (re.compile(r"35(?:2[89]|[3-8]\d)"), (16, 17, 18, 19)),
)


def _email(match: re.Match) -> str | None:
    return match.group()


def _iban(match: re.Match) -> str | None:
    """The longest prefix of the match, ending at a group, that is an IBAN by length and mod 97: the pattern may
    run on into a following capitalised word."""
    groups = match.group().split(" ")
    for end in range(len(groups), 0, -1):
        compact = "".join(groups[:end])
        if 15 <= len(compact) <= 34 and _mod97(compact) == 1:
            return " ".join(groups[:end])
    return None


def _mod97(iban: str) -> int:
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97


def _card(match: re.Match) -> str | None:
    digits = re.sub(r"[ -]", "", match.group())
    issued = any(prefix.match(digits) and len(digits) in lengths for prefix, lengths in _CARD_ISSUERS)
    return match.group() if issued and _luhn(digits) else None


def _luhn(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _ip(match: re.Match) -> str | None:
    candidate = match.group()
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if address.version == 4:
        return None if _VERSION.search(match.string, 0, match.start()) else candidate
    # "a::b" in code (C++ scopes) parses too; an address worth hiding has at least two groups with a digit
    return candidate if sum(any(c.isdigit() for c in g) for g in candidate.split(":")) >= 2 else None


def _phone(match: re.Match) -> str | None:
    return match.group() if 7 <= sum(c.isdigit() for c in match.group()) <= 15 else None


# Order matters: an email may hold digits, an IBAN or a card number may look like a phone number.
_KINDS: tuple[tuple[str, re.Pattern, Callable[[re.Match], str | None]], ...] = (
    ("email", _EMAIL, _email),
    ("iban", _IBAN, _iban),
    ("card", _CARD, _card),
    ("ip", _IPV6, _ip),
    ("ip", _IPV4, _ip),
    ("phone", _PHONE, _phone),
)


def scrub(text: str, counts: Counter) -> str:
    """`text` with every identifier replaced by its kind's token ([EMAIL], [PHONE], [IBAN], [CARD], [IP]); adds the
    number replaced of each kind to `counts`."""
    for kind, pattern, identify in _KINDS:

        def replace(match: re.Match, kind: str = kind, identify=identify) -> str:
            found = identify(match)
            if found is None:
                return match.group()
            counts[kind] += 1
            return TOKENS[kind] + match.group()[len(found) :]  # an IBAN's validator may keep a prefix only

        text = pattern.sub(replace, text)
    return text
