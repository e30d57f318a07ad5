"""40 rows that cannot be imported, of every kind: each is named by file and line with its reason, and an import
that meets them writes nothing (or, with --skip-invalid, leaves them out and lists them), except that a file of
mixed formats is always refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finch.importing import ImportRejected
from tests.data_import.helpers import read_jsonl, run_import

GOOD_SHAREGPT = {"conversations": [{"from": "human", "value": "Hi there"}, {"from": "gpt", "value": "Hello!"}]}
GOOD_ALPACA = {"instruction": "Name a colour.", "output": "Blue."}
GOOD_MESSAGES = {
    "messages": [{"role": "user", "content": "Name a fruit."}, {"role": "assistant", "content": "A pear."}]
}


def turns(*pairs):
    return [{"from": speaker, "value": value} for speaker, value in pairs]


def chat(*pairs):
    return [{"role": role, "content": content} for role, content in pairs]


# (the row: a JSON value, or raw bytes for a line that is not JSON, and a fragment of its reason)
SHAREGPT_BAD = [
    ({"conversations": []}, "conversations: expected a non-empty array"),
    ({"conversations": "hi"}, "conversations: expected a non-empty array of {from, value}, got a string"),
    ({"conversations": turns(("gpt", "I go first"), ("human", "Hm"))}, "opens with the assistant"),
    ({"conversations": turns(("human", ""), ("gpt", "a"))}, "conversations[0].value: empty user turn"),
    ({"conversations": turns(("human", "q"), ("gpt", "   "))}, "conversations[1].value: empty assistant turn"),
    ({"conversations": [{"from": "human", "value": 5}]}, "conversations[0].value: expected a string, got a number"),
    ({"conversations": turns(("human", "q"), ("tool", "{}"))}, "conversations[1].from: 'tool' is not a chat role"),
    ({"conversations": [{"from": "human"}]}, "conversations[0].value: missing"),
    ({"conversations": turns(("human", "q"))}, "ends without an assistant turn"),
    ({"conversations": turns(("human", "a"), ("human", "b"), ("gpt", "c"))}, "two turns in a row by the user"),
    ({"conversations": turns(("human", "q"), ("gpt", "a"), ("system", "s"))}, "a system turn after the first"),
    ({"conversations": ["hi", "there"]}, "conversations[0]: expected an object with from and value, got a string"),
    ({"system": 3, "conversations": GOOD_SHAREGPT["conversations"]}, "system: expected a string, got a number"),
    (b"\x00\x01\x02binary\xff\xfe", "binary data, not UTF-8 text"),
    (b'{"conversations": [{"from": "human", "value": "caf\xe9"}]}', "binary data, not UTF-8 text"),
    (b'{"conversations": [', "invalid JSON"),
    ([1, 2, 3], "expected a JSON object, got an array"),
    ("just a string", "expected a JSON object, got a string"),
    ({"text": "hello", "label": 1}, "fits no format: fields label, text"),
    ({"conversations": turns(("human", "q"), ("gpt", None))}, "conversations[1].value: missing"),
]
ALPACA_BAD = [
    ({"instruction": "x"}, "output: missing"),
    ({"output": "y"}, "instruction: missing"),
    ({"instruction": 42, "output": "y"}, "instruction: expected a string, got a number"),
    ({"instruction": "x", "output": ["y"]}, "output: expected a string, got an array"),
    ({"instruction": " ", "output": "y"}, "instruction: empty user turn"),
    ({"instruction": "x", "output": ""}, "output: empty assistant turn"),
    ({"instruction": "x", "input": 7, "output": "y"}, "input: expected a string, got a number"),
    ({"instruction": "x", "output": "y", "history": "earlier"}, "history: expected an array"),
    ({"instruction": "x", "output": "y", "history": [["only one"]]}, "history[0]: expected a pair of strings"),
    ({"instruction": "x", "output": "y", "system": ["s"]}, "system: expected a string, got an array"),
    (None, "expected a JSON object, got null"),
]
MESSAGES_BAD = [
    ({"messages": []}, "messages: expected a non-empty array"),
    ({"messages": chat(("assistant", "first"), ("user", "q"), ("assistant", "a"))}, "opens with the assistant"),
    ({"messages": chat(("tool", "x"))}, "messages[0].role: 'tool' is not one of system, user, assistant"),
    ({"messages": [{"role": "user", "content": {"text": "q"}}]}, "messages[0].content: expected a string, got an"),
    ({"messages": chat(("user", "q"), ("assistant", ""))}, "messages[1].content: empty assistant turn"),
    ({"messages": chat(("user", "q"))}, "ends without an assistant turn"),
]
MIXED_BAD = [
    (GOOD_SHAREGPT, "a sharegpt row in a file of alpaca rows (line 1 on)"),
    (GOOD_MESSAGES, "a messages row in a file of alpaca rows"),
    ({"prompt": "p", "completion": "c"}, "a prompt-completion row in a file of alpaca rows"),
]


def write_lines(path: Path, good: dict, bad: list) -> dict[int, str]:
    """JSON Lines: good and bad rows taking turns (with a blank line now and then); {line: reason fragment}."""
    lines, expected = [], {}
    for i, (row, reason) in enumerate(bad):
        lines.append(json.dumps({**good, "id": i}).encode())
        if i % 4 == 0:
            lines.append(b"")
        lines.append(row if isinstance(row, bytes) else json.dumps(row).encode())
        expected[len(lines)] = reason
    path.write_bytes(b"\n".join(lines) + b"\n")
    return expected


def write_array(path: Path, good: dict, bad: list) -> dict[int, str]:
    """A pretty-printed JSON array: each row on the lines json.dumps(indent=2) gives it."""
    rows = [row for i, (bad_row, _) in enumerate(bad) for row in ({**good, "id": i}, bad_row)]
    text = json.dumps(rows, indent=2)
    path.write_text(text, encoding="utf-8")
    lines = text.splitlines()
    starts = [n for n, line in enumerate(lines, 1) if line[:2] == "  " and line[2] not in " }]"]
    return {line: reason for line, (_, reason) in zip(starts[1::2], bad)}


@pytest.fixture
def broken(tmp_path) -> tuple[list[Path], dict[tuple[Path, int], str]]:
    """Four files holding 40 bad rows among good ones; {(file, line): reason fragment}."""
    files = {
        tmp_path / "sharegpt.jsonl": write_lines(tmp_path / "sharegpt.jsonl", GOOD_SHAREGPT, SHAREGPT_BAD),
        tmp_path / "alpaca.json": write_array(tmp_path / "alpaca.json", GOOD_ALPACA, ALPACA_BAD),
        tmp_path / "messages.jsonl": write_lines(tmp_path / "messages.jsonl", GOOD_MESSAGES, MESSAGES_BAD),
        tmp_path / "mixed.jsonl": write_lines(tmp_path / "mixed.jsonl", GOOD_ALPACA, MIXED_BAD),
    }
    expected = {(path, line): reason for path, lines in files.items() for line, reason in lines.items()}
    assert len(expected) == 40
    return list(files), expected


def test_every_bad_row_is_named_and_nothing_is_written(broken, tmp_path):
    files, expected = broken
    with pytest.raises(ImportRejected) as caught:
        run_import(tmp_path, *files)
    problems = caught.value.problems
    assert {(p.file, p.line) for p in problems} == set(expected)
    for problem in problems:
        assert str(problem).startswith(f"{problem.file}:{problem.line}: ")
        assert expected[(problem.file, problem.line)] in problem.reason, str(problem)
    assert "40 rows cannot be imported" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_a_file_of_mixed_formats_is_refused_even_when_skipping(broken, tmp_path):
    files, expected = broken
    with pytest.raises(ImportRejected) as caught:
        run_import(tmp_path, *files, skip_invalid=True)
    assert "split the files that mix formats" in str(caught.value)
    mixed = {(p.file, p.line) for p in caught.value.problems if p.mixed_format}
    assert mixed == {where for where in expected if where[0].name == "mixed.jsonl"}
    assert not (tmp_path / "out").exists()


def test_skip_invalid_leaves_the_bad_rows_out_and_lists_them(broken, tmp_path):
    files, expected = broken
    report, folder = run_import(tmp_path, *files[:3], skip_invalid=True, dedup=False)
    listed = {entry["source"]: entry["reason"] for entry in report["skipped"] if entry["step"] == "invalid"}
    wanted = {f"{path}:{line}": reason for (path, line), reason in expected.items() if path in files[:3]}
    assert set(listed) == set(wanted) and len(listed) == 37
    assert all(wanted[source] in reason for source, reason in listed.items())
    rows = read_jsonl(folder / "train.jsonl")
    assert len(rows) == len(SHAREGPT_BAD) + len(ALPACA_BAD) + len(MESSAGES_BAD)  # one good row before each bad one
    assert {row["metadata"]["format"] for row in rows} == {"sharegpt", "alpaca", "messages"}


def test_a_rejected_import_leaves_an_earlier_one_as_it_was(broken, tmp_path):
    files, _ = broken
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(GOOD_MESSAGES) + "\n", encoding="utf-8")
    _, folder = run_import(tmp_path, good)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(ImportRejected):
        run_import(tmp_path, good, *files)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_format_given_reads_every_row_as_it(tmp_path):
    path = tmp_path / "rows.jsonl"
    lines = [json.dumps(GOOD_SHAREGPT), json.dumps(GOOD_ALPACA), json.dumps([GOOD_SHAREGPT])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ImportRejected) as caught:
        run_import(tmp_path, path, format="sharegpt")
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:2: conversations: missing",
        f"{path}:3: expected a JSON object, got an array; a row of one of: messages (messages); sharegpt "
        "(conversations); alpaca (instruction, output); prompt-completion (prompt, completion)",
    ]
    assert not any(p.mixed_format for p in caught.value.problems)
