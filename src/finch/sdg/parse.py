"""Reading a teacher's free text: numbered lists, labelled records, ratings and multiple-choice questions.

Teachers (small ones above all) answer with garbage often; every parser returns what it could read and never raises.
"""

from __future__ import annotations

import re

_ITEM = re.compile(r"^\s*(?:#+\s*)?(?:\*\*)?(?:\d{1,3}\s*[.):]|[-*•])\s+(?:\*\*)?\s*")
_ALIASES = {
    "question": ("question", "q", "instruction"),
    "answer": ("answer", "a", "response"),
    "context": ("context", "passage", "c"),
}
MIN_WORDS = 3


def numbered_items(text: str) -> list[str]:
    """The items of a numbered or bulleted list; continuation lines join the item above. Text before the first
    marker (a preamble) is ignored; items shorter than MIN_WORDS words are dropped."""
    items: list[list[str]] = []
    for line in text.splitlines():
        marker = _ITEM.match(line)
        if marker:
            items.append([line[marker.end() :].strip()])
        elif items and line.strip():
            items[-1].append(line.strip())
    cleaned = [_clean(" ".join(parts)) for parts in items]
    return [item for item in cleaned if len(item.split()) >= MIN_WORDS]


def _clean(value: str) -> str:
    return value.strip().strip("*").strip()


def _label_pattern(fields: list[str]) -> re.Pattern:
    names = {alias: field for field in fields for alias in _ALIASES.get(field, (field,))}
    alternatives = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
    return re.compile(
        rf"^\s*(?:\d{{1,3}}\s*[.)]\s*)?(?:[-*#]+\s*)?(?:\*\*)?({alternatives})\s*(?:\d{{1,3}})?\s*(?:\*\*)?\s*:\s*(?:\*\*)?",
        re.IGNORECASE,
    ), names


def labelled_records(text: str, fields: list[str]) -> tuple[list[dict[str, str]], int]:
    """Records written as `Field: value` lines (values may span lines), a new record starting at each `fields[0]`
    label. Returns the complete records and how many started records were incomplete."""
    pattern, names = _label_pattern(fields)
    records: list[dict[str, list[str]]] = []
    current_field: str | None = None
    for line in text.splitlines():
        match = pattern.match(line)
        if match:
            field = names[match.group(1).lower()]
            if field == fields[0] or not records or field in records[-1]:
                records.append({})
            records[-1][field] = [line[match.end() :].strip()]
            current_field = field
        elif records and current_field and line.strip():
            records[-1][current_field].append(line.strip())
    complete, broken = [], 0
    for record in records:
        values = {field: _clean("\n".join(lines)) for field, lines in record.items()}
        if all(values.get(field) for field in fields):
            complete.append({field: values[field] for field in fields})
        else:
            broken += 1
    return complete, broken


_RATING = re.compile(r"\b(?:rating|score)\s*[:=]?\s*\**\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_BARE = re.compile(r"^\s*\**\s*(\d+(?:\.\d+)?)\s*\**\s*(?:/\s*\d+)?\s*\**\s*[.!]?\s*$")


def rating(text: str, low: int = 1, high: int = 5) -> float | None:
    """A judge's score: the number after `Rating:`/`Score:`, or an answer that is only a number; None when there
    is no such number or it is outside [low, high]."""
    match = _RATING.search(text)
    if not match:
        first = text.strip().splitlines()[0] if text.strip() else ""
        match = _BARE.match(first)
    if not match:
        return None
    value = float(match.group(1))
    return value if low <= value <= high else None


_CHOICE = re.compile(r"^\s*\(?([A-D])\s*[).:]\s+(.+)$")
_ANSWER = re.compile(r"^\s*(?:correct\s+)?answer\s*:\s*\(?([A-D])\b", re.IGNORECASE)
_QUESTION = re.compile(r"^\s*(?:\*\*)?question\s*(?:\*\*)?\s*:\s*(.+)$", re.IGNORECASE)


def multiple_choice(text: str) -> dict | None:
    """`Question: …`, four choices `A) …` to `D) …`, and `Answer: B`; None unless all are there and distinct."""
    question, choices, answer = None, {}, None
    for line in text.splitlines():
        if question is None and (m := _QUESTION.match(line)):
            question = _clean(m.group(1))
        elif m := _ANSWER.match(line):
            answer = m.group(1).upper()
            break
        elif question is not None and (m := _CHOICE.match(line)):
            choices.setdefault(m.group(1).upper(), _clean(m.group(2)))
    if not question or answer is None or sorted(choices) != ["A", "B", "C", "D"]:
        return None
    ordered = [choices[letter] for letter in "ABCD"]
    if len({c.lower() for c in ordered}) < 4:
        return None
    return {"question": question, "choices": ordered, "answer": "ABCD".index(answer)}
