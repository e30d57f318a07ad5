"""The YAML reader: positions, duplicate keys, bounded aliases and nesting."""

from __future__ import annotations

import pytest

from finch.taxonomy.lint import DEPTH_MESSAGE, MAX_VALUES, parse_yaml
from finch.taxonomy.problems import Reporter


def parse(text):
    rep = Reporter()
    return parse_yaml(text, rep), rep


def test_positions_of_values_and_keys():
    parsed, rep = parse("a: 1\nlist:\n  - q: x\n    r: [1, 2]\n")
    assert rep.problems == []
    assert parsed.data == {"a": 1, "list": [{"q": "x", "r": [1, 2]}]}
    assert parsed.pos(("list", 0, "q")) == (3, 8)
    assert parsed.key_pos(("list", 0, "r")) == (4, 5)
    assert parsed.pos(("list", 0, "r", 1)) == (4, 12)
    assert parsed.pos(("list", 0, "missing")) == (3, 5)  # falls back to the enclosing mapping


def test_dates_stay_text_and_yaml_booleans_are_booleans():
    parsed, _ = parse("d: 2024-01-01\nb: yes\nn: ~\nf: 1.5\n")
    assert parsed.data == {"d": "2024-01-01", "b": True, "n": None, "f": 1.5}


def test_moderate_aliases_are_fine_but_bombs_stop():
    parsed, rep = parse("a: &x [1, 2]\nb: *x\n")
    assert rep.problems == [] and parsed.data == {"a": [1, 2], "b": [1, 2]}
    levels = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else '1'] * 10)}]\n" for i in range(8))
    parsed, rep = parse(levels)
    assert parsed is None and "alias bomb" in rep.errors[0].message
    assert f"{MAX_VALUES:,}" in rep.errors[0].message


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 100_000 + "]" * 100_000 + "\n",  # past libyaml's own limit (PyYAML 6.0.4 stops it there)
        "a: " + "{k: " * 40 + "1" + "}" * 40 + "\n",  # within libyaml's limit: finch's bound stops it
        "".join(" " * (2 * i) + f"k{i}:\n" for i in range(40)) + " " * 80 + "v\n",  # block nesting
    ],
    ids=["flow-100000", "flow-40", "block-40"],
)
def test_deep_nesting_is_finchs_own_error_not_a_crash(text):
    parsed, rep = parse(text)
    assert parsed is None
    assert [p.rule for p in rep.errors] == ["yaml-depth"]
    assert rep.errors[0].message == DEPTH_MESSAGE


def test_tab_inside_block_text_is_only_a_warning():
    parsed, rep = parse("a: |\n  x\n  \ty\n")
    assert parsed.data == {"a": "x\n\ty\n"}
    assert [(p.severity, p.line) for p in rep.problems] == [("warning", 3)]


def test_unclosed_quote_points_at_the_opening_quote():
    _, rep = parse('a: 1\nb: "open\nc: 2\n')
    assert rep.errors[0].line == 2 and "starts here" in rep.errors[0].message
