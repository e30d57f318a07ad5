"""Does an answer's fact come from the passage that holds it? A grounding score a reader can audit.

The key tokens are the answer's tokens that spell one of the reference's key facts (finch.evaluate.key_facts: the
numbers with units, dates and names a correct answer must state). For them, the grounding score is the share of
their attribution (|gradient × input|) and of their attention rollout that lands on the passage's tokens, out of
all prompt tokens. Chance is the passage's share of the prompt's tokens: a score well above it means the answer's
facts lean on the passage; near it, the model answered from elsewhere (its weights, the question's wording).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from finch.evaluate.key_facts import extract_key_facts


def token_spans(tokenizer, ids: list[int]) -> tuple[str, list[tuple[int, int]]]:
    """The decoded text of ids and each token's (start, end) in it, from growing prefixes, so pieces of a character
    split over several byte tokens land where they print."""
    text, spans = "", []
    for i in range(len(ids)):
        grown = tokenizer.decode(ids[: i + 1], skip_special_tokens=False)
        start = min(len(text), len(grown))
        spans.append((start, len(grown)))
        text = grown
    return text, spans


def _overlapping(spans: list[tuple[int, int]], start: int, end: int) -> list[int]:
    return [i for i, (s, e) in enumerate(spans) if s < end and e > start]


def fact_rows(answer: str, spans: list[tuple[int, int]], facts: list[str]) -> list[int]:
    """The answer tokens that spell a fact: the fact's words in order, else (an answer may say "16 s" for
    "16 seconds") its numbers on their own."""
    rows: set[int] = set()
    for fact in facts:
        words = re.findall(r"[^\W_]+", fact)
        if not words:
            continue
        match = re.search(r"\b" + r"\W*".join(map(re.escape, words)) + r"\w*", answer, re.IGNORECASE)
        found = [match.span()] if match else []
        if not found:
            found = [m.span() for w in words if w.isdigit() for m in re.finditer(rf"(?<!\d){w}(?!\d)", answer)]
        for start, end in found:
            rows.update(_overlapping(spans, start, end))
    return sorted(rows)


@dataclass
class Grounding:
    facts: list[str]  # the reference's key facts
    key_rows: list[int]  # the answer tokens that spell them (empty: the answer states none)
    key_tokens: list[str]
    attribution_share: float | None  # of the key tokens' |gradient × input| on the passage
    rollout_share: float | None
    chance: float  # the passage's share of the prompt's tokens

    def to_dict(self) -> dict:
        return asdict(self)


def grounding(
    attribution: np.ndarray,
    rollout: np.ndarray,
    answer: str,
    answer_spans: list[tuple[int, int]],
    passage_columns: list[int],
    reference: str,
    question: str,
    sink: bool = False,
) -> Grounding:
    """sink: the first prompt token is an attention sink; the rollout shares leave it out (it holds most of every
    row's weight whatever the question, which would drown the passage's share)."""
    facts = extract_key_facts(reference, question)
    rows = fact_rows(answer, answer_spans, facts)
    prompt_len = attribution.shape[1]
    chance = len(passage_columns) / prompt_len
    key_tokens = [answer[slice(*answer_spans[r])] for r in rows]
    if not rows:
        return Grounding(facts, rows, key_tokens, None, None, chance)
    rollout_rows, rollout_columns = rollout[rows], passage_columns
    if sink:
        rollout_rows, rollout_columns = rollout_rows[:, 1:], [c - 1 for c in passage_columns if c > 0]
    return Grounding(
        facts,
        rows,
        key_tokens,
        _share(np.abs(attribution[rows]), passage_columns),
        _share(rollout_rows, rollout_columns),
        chance,
    )


def _share(weights: np.ndarray, columns: list[int]) -> float:
    total = float(weights.sum())
    return float(weights[:, columns].sum()) / total if total > 0 else 0.0


def passage_columns(prompt: str, prompt_spans: list[tuple[int, int]], passage: str) -> list[int]:
    """The prompt tokens of the passage (its first occurrence in the decoded prompt)."""
    start = prompt.find(passage.strip())
    if start < 0:
        raise ValueError("the passage is not in the prompt as the tokenizer decodes it.")
    return _overlapping(prompt_spans, start, start + len(passage.strip()))
