"""The formats peers write chat data in, read into finch's messages rows, every bad row named by file and line.

A file is JSON Lines, a JSON array of rows, or CSV (by its .csv suffix, or --format csv). Each row's format is
told by its fields:

| format            | fields                                                                         |
|-------------------|--------------------------------------------------------------------------------|
| messages          | messages: [{role: system/user/assistant, content}, ...] (OpenAI, HF chat)      |
| sharegpt          | conversations: [{from: system/human/gpt, value}, ...]; optional system         |
| alpaca            | instruction, output; optional input (appended to the instruction after a blank |
|                   | line), system, history: [[instruction, output], ...] (earlier turns)            |
| prompt-completion | prompt, completion: two strings, or two lists of messages (TRL's conversational)|

A CSV file's header names the fields of alpaca or prompt-completion rows. Contents are stripped of surrounding
whitespace (chat templates trim them anyway); nothing else is changed. A conversation may open with one system
turn, then alternates user and assistant turns, starting with the user and ending with the assistant.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROW_FORMATS = ("messages", "sharegpt", "alpaca", "prompt-completion")
FORMATS = ("auto", *ROW_FORMATS, "csv")
ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
}
# the field that tells each format, in the order a row is tried against them
_TELLING_FIELDS = {
    "messages": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction", "output"),
    "prompt-completion": ("prompt", "completion"),
}


@dataclass(frozen=True)
class Problem:
    """A row that cannot be imported, or a file that cannot be read: where and why."""

    file: Path
    line: int
    reason: str
    mixed_format: bool = False  # a row of another format than its file's: never skipped, the file is refused

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class Row:
    """One imported conversation and where it came from."""

    messages: list[dict[str, str]]
    format: str
    file: Path
    line: int

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class FileResult:
    file: Path
    container: str  # jsonl | json | csv
    format: str | None  # the rows' format (None: no row was read)
    rows: list[Row]
    problems: list[Problem]


class _RowError(Exception):
    """Why one row cannot be imported; the caller adds the file and line."""


def read_file(path: Path, format: str = "auto") -> FileResult:
    """Every row of `path` as messages, and a problem for each row that is not one (with `format` auto, rows of
    another format than most of the file's are problems too)."""
    raw = path.read_bytes()
    if format == "csv" or (format == "auto" and path.suffix.lower() == ".csv"):
        container, (records, problems) = "csv", _csv_records(path, raw)
    elif _is_json_array(raw):
        container, (records, problems) = "json", _json_array(path, raw)
    else:
        container, (records, problems) = "jsonl", _json_lines(path, raw)
    forced = format if format in ROW_FORMATS else None
    detected: list[tuple[int, Any, str]] = []
    for line, value in records:
        row_format = forced if forced and isinstance(value, dict) else _detect(value)
        if row_format is None:
            problems.append(Problem(path, line, _fits_none(value)))
        else:
            detected.append((line, value, row_format))
    counts = Counter(f for _, _, f in detected)
    file_format = max(counts, key=lambda f: (counts[f], -_first_line(detected, f))) if counts else None
    rows = []
    for line, value, row_format in detected:
        if row_format != file_format:
            problems.append(
                Problem(
                    path,
                    line,
                    f"a {row_format} row in a file of {file_format} rows (line {_first_line(detected, file_format)} "
                    "on); one file holds one format: split it, or pass --format to read every row as one",
                    mixed_format=True,
                )
            )
            continue
        try:
            rows.append(Row(_checked(_PARSERS[row_format](value)), row_format, path, line))
        except _RowError as e:
            problems.append(Problem(path, line, str(e)))
    problems.sort(key=lambda p: p.line)
    return FileResult(path, container, file_format, rows, problems)


def _first_line(detected: list[tuple[int, Any, str]], row_format: str | None) -> int:
    return next(line for line, _, f in detected if f == row_format)


def _is_json_array(raw: bytes) -> bool:
    """A JSON array of rows, not JSON Lines: it opens with '[' and its first line is not a whole JSON value on its
    own (a pretty-printed array), or it is the only line (an array on one line)."""
    head, _, rest = raw.lstrip().partition(b"\n")
    if not head.startswith(b"["):
        return False
    try:
        json.loads(head)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return True
    return not rest.strip()


def _json_lines(path: Path, raw: bytes) -> tuple[list[tuple[int, Any]], list[Problem]]:
    records, problems = [], []
    for number, line_bytes in enumerate(raw.split(b"\n"), 1):
        if not line_bytes.strip():
            continue
        line = _decode(line_bytes.removeprefix(b"\xef\xbb\xbf") if number == 1 else line_bytes)
        if line is None:
            problems.append(Problem(path, number, "binary data, not UTF-8 text; each line must be one JSON object"))
            continue
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as e:
            problems.append(Problem(path, number, f"invalid JSON ({e.msg}); each line must be one JSON object"))
    return records, problems


def _json_array(path: Path, raw: bytes) -> tuple[list[tuple[int, Any]], list[Problem]]:
    """The elements of a JSON array, each with the line it starts on."""
    text = _decode(raw.removeprefix(b"\xef\xbb\xbf"))
    if text is None:
        return [], [_binary(path, raw)]
    try:
        values = json.loads(text)
    except json.JSONDecodeError as e:
        return [], [Problem(path, e.lineno, f"invalid JSON ({e.msg}); give a JSON array of rows, or JSON Lines")]
    decoder, gap = json.JSONDecoder(), re.compile(r"[\s,]*")
    records, at, line = [], text.index("[") + 1, 1
    for value in values:
        start = gap.match(text, at).end()
        line += text.count("\n", at, start)
        records.append((line, value))
        at = decoder.raw_decode(text, start)[1]
        line += text.count("\n", start, at)
    return records, []


def _csv_records(path: Path, raw: bytes) -> tuple[list[tuple[int, Any]], list[Problem]]:
    """Rows as {column: cell}, by the header's lowercased names; empty cells are missing fields."""
    text = _decode(raw.removeprefix(b"\xef\xbb\xbf"))
    if text is None:
        return [], [_binary(path, raw)]
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in next(reader, [])]
    records, problems, line = [], [], reader.line_num + 1
    try:
        for cells in reader:
            if len(cells) != len(header) and any(cell.strip() for cell in cells):
                problems.append(Problem(path, line, f"{len(cells)} cells in a row under a header of {len(header)}"))
            elif any(cell.strip() for cell in cells):
                records.append((line, {k: v for k, v in zip(header, cells) if v.strip()}))
            line = reader.line_num + 1
    except csv.Error as e:
        problems.append(Problem(path, line, f"not readable as CSV ({e})"))
    return records, problems


def _decode(raw: bytes) -> str | None:
    """UTF-8 text, or None for bytes that are not (NUL bytes count as binary: no text file holds them)."""
    if b"\x00" in raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _binary(path: Path, raw: bytes) -> Problem:
    return Problem(path, 1, "binary data, not UTF-8 text; save it as UTF-8 JSON, JSON Lines or CSV")


def _detect(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    return next((name for name, fields in _TELLING_FIELDS.items() if any(f in value for f in fields)), None)


def _fits_none(value: Any) -> str:
    expected = "; ".join(f"{name} ({', '.join(fields)})" for name, fields in _TELLING_FIELDS.items())
    if not isinstance(value, dict):
        return f"expected a JSON object, got {_type(value)}; a row of one of: {expected}"
    found = ", ".join(sorted(value)) or "none"
    return f"fits no format: fields {found}; expected the fields of one of: {expected}"


def _type(value: Any) -> str:
    if value == []:
        return "an empty array"
    names = {dict: "an object", list: "an array", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


def _required(row: dict, field: str, where: str | None = None) -> str:
    value = row.get(field)
    if value is None:
        raise _RowError(f"{where or field}: missing")
    if not isinstance(value, str):
        raise _RowError(f"{where or field}: expected a string, got {_type(value)}")
    return value


def _optional(row: dict, field: str) -> str | None:
    return None if row.get(field) is None else _required(row, field)


def _system(row: dict) -> list[Turn]:
    system = _optional(row, "system")
    return [("system", system, "system")] if system is not None else []


# A parsed turn: (role, content, field) - the field names it in the source row, for errors.
Turn = tuple[str, str, str]


def _messages(row: dict) -> list[Turn]:
    return _message_list(row.get("messages"), "messages")


def _message_list(messages: Any, field: str) -> list[Turn]:
    if messages is None:
        raise _RowError(f"{field}: missing")
    if not isinstance(messages, list) or not messages:
        raise _RowError(f"{field}: expected a non-empty array of {{role, content}}, got {_type(messages)}")
    turns = []
    for i, message in enumerate(messages):
        where = f"{field}[{i}]"
        if not isinstance(message, dict):
            raise _RowError(f"{where}: expected an object with role and content, got {_type(message)}")
        if message.get("role") not in ROLES:
            raise _RowError(f"{where}.role: {message.get('role')!r} is not one of {', '.join(ROLES)}")
        turns.append((message["role"], _required(message, "content", f"{where}.content"), f"{where}.content"))
    return turns


def _sharegpt(row: dict) -> list[Turn]:
    conversations = row.get("conversations")
    if conversations is None:
        raise _RowError("conversations: missing")
    if not isinstance(conversations, list) or not conversations:
        raise _RowError(f"conversations: expected a non-empty array of {{from, value}}, got {_type(conversations)}")
    turns = _system(row)
    for i, turn in enumerate(conversations):
        where = f"conversations[{i}]"
        if not isinstance(turn, dict):
            raise _RowError(f"{where}: expected an object with from and value, got {_type(turn)}")
        speaker = turn.get("from")
        if speaker not in SHAREGPT_ROLES:
            raise _RowError(
                f"{where}.from: {speaker!r} is not a chat role; finch reads "
                f"{', '.join(SHAREGPT_ROLES)} (tool and function turns are not trained on)"
            )
        turns.append((SHAREGPT_ROLES[speaker], _required(turn, "value", f"{where}.value"), f"{where}.value"))
    return turns


def _alpaca(row: dict) -> list[Turn]:
    instruction, output, extra = _required(row, "instruction"), _required(row, "output"), _optional(row, "input")
    turns = _system(row)
    history = row.get("history") or []
    if not isinstance(history, list):
        raise _RowError(f"history: expected an array of [instruction, output] pairs, got {_type(history)}")
    for i, pair in enumerate(history):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            raise _RowError(f"history[{i}]: expected a pair of strings [instruction, output]")
        turns += [("user", pair[0], f"history[{i}][0]"), ("assistant", pair[1], f"history[{i}][1]")]
    user = f"{instruction.strip()}\n\n{extra.strip()}" if extra and extra.strip() else instruction
    return [*turns, ("user", user, "instruction"), ("assistant", output, "output")]


def _prompt_completion(row: dict) -> list[Turn]:
    prompt, completion = row.get("prompt"), row.get("completion")
    if isinstance(prompt, list) and isinstance(completion, list):  # TRL's conversational form
        return _message_list(prompt, "prompt") + _message_list(completion, "completion")
    prompt, completion = _required(row, "prompt"), _required(row, "completion")
    return [*_system(row), ("user", prompt, "prompt"), ("assistant", completion, "completion")]


_PARSERS = {"messages": _messages, "sharegpt": _sharegpt, "alpaca": _alpaca, "prompt-completion": _prompt_completion}


def _checked(turns: list[Turn]) -> list[dict[str, str]]:
    """The turns as messages, once they make a conversation a trainer can learn from."""
    for role, content, field in turns:
        if not content.strip():
            raise _RowError(f"{field}: empty {role} turn")
    chat = turns[1:] if turns[0][0] == "system" else turns
    for i, (role, _, field) in enumerate(chat):
        expected = "user" if i % 2 == 0 else "assistant"
        if role == "system":
            raise _RowError(f"{field}: a system turn after the first turn; only the first turn may be the system")
        if role != expected:
            opening = "opens with" if i == 0 else "has two turns in a row by"
            raise _RowError(f"{field}: the conversation {opening} the {role}; turns alternate, user first")
    if not chat or chat[-1][0] != "assistant":
        where = chat[-1][2] if chat else turns[0][2]
        raise _RowError(f"{where}: the conversation ends without an assistant turn; nothing to learn from it")
    return [{"role": role, "content": content.strip()} for role, content, _ in turns]
