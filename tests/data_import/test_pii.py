"""Personal identifiers: 20 planted ones of 5 kinds are all replaced and counted; ordinary prose full of numbers,
dates and versions is left exactly as it was; numbers of the right shape that fail their checksum stay."""

from __future__ import annotations

from collections import Counter

from finch.importing.pii import scrub
from tests.data_import.helpers import read_jsonl, run_import, write_jsonl

PLANTED = {
    "email": ["ada.lovelace@example.com", "ops+alerts@mail.example.co.uk", "b.smith@test.org", "x_y@sub.domain.io"],
    "phone": ["+44 20 7946 0958", "(415) 555-0199", "415-555-0123", "030 1234 5678"],
    "iban": [
        "DE89 3704 0044 0532 0130 00",
        "GB82 WEST 1234 5698 7654 32",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
    ],
    "card": ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "6011111111111117"],
    "ip": ["192.168.1.10", "10.0.0.254", "2001:db8::8a2e:370:7334", "fe80::1ff:fe23:4567:890a"],
}
TOKENS = {"email": "[EMAIL]", "phone": "[PHONE]", "iban": "[IBAN]", "card": "[CARD]", "ip": "[IP]"}
PROSE = """\
On 2024-03-15 (also written 15/03/2024, 03/15/2024 or 15.03.2024) we shipped version 1.2.3 of the tool, and
v2.0.1.4 a week later at 14:30; the nightly build starts at 02:15:30. It cost $1,299.99, or 249 euros, 12.5% more
than in 2019. The order was 2,500 kg of flour, 3.5 litres of oil and 42 units of yeast for 1 000 000 people.
The meeting ran from 10:00 to 11:30 in room 4B on floor 12; see ISBN 978-3-16-148410-0 and order 20240315.
The screen is 16:9, the score was 3-1, read pages 120-135, expect -5 to 30 degrees and winds of 100 m/s.
Call std::vector::size or a::b in C++. The world grew from 7,800,000,000 people to 8.1 billion; pi is
3.14159265358979, the Moon landing was in 1969, and the walk took 12345678901234 steps (a number, not a card).
"""
# The shapes of an IBAN and of a card number, with a wrong check digit: not identifiers, so they stay.
NEAR_MISSES = "Reference DE89 3704 0044 0532 0130 01 and tally 4111 1111 1111 1112 are codes."


def test_planted_identifiers_are_all_replaced_and_counted(tmp_path):
    rows = []
    for k in range(4):
        user = f"Reach me at {PLANTED['email'][k]} or {PLANTED['phone'][k]}, please."
        answer = f"Noted: pay {PLANTED['iban'][k]} by card {PLANTED['card'][k]}, logged from {PLANTED['ip'][k]}."
        rows.append({"prompt": user, "completion": answer})
    # scrubbed, the four rows read the same: deduplication would keep one
    report, folder = run_import(tmp_path, write_jsonl(tmp_path / "pii.jsonl", rows), dedup=False)

    assert report["pii"] == {"email": 4, "phone": 4, "iban": 4, "card": 4, "ip": 4, "rows": 4}
    written = (folder / "train.jsonl").read_text(encoding="utf-8")
    for kind, values in PLANTED.items():
        assert not [v for v in values if v in written], kind
        assert written.count(TOKENS[kind]) == 4
    first = read_jsonl(folder / "train.jsonl")[0]["messages"]
    assert first[0]["content"] == "Reach me at [EMAIL] or [PHONE], please."
    assert first[1]["content"] == "Noted: pay [IBAN] by card [CARD], logged from [IP]."


def test_ordinary_prose_is_left_alone():
    counts: Counter = Counter()
    assert scrub(PROSE, counts) == PROSE
    assert scrub(NEAR_MISSES, counts) == NEAR_MISSES
    assert counts == Counter()


def test_keep_pii_keeps_them(tmp_path):
    rows = [{"prompt": f"Mail {PLANTED['email'][0]}", "completion": f"Call {PLANTED['phone'][0]}."}]
    report, folder = run_import(tmp_path, write_jsonl(tmp_path / "pii.jsonl", rows), scrub_pii=False)
    assert report["pii"] is None
    assert PLANTED["email"][0] in (folder / "train.jsonl").read_text(encoding="utf-8")
