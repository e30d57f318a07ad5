"""An LLM judge grading answers 1-10 with FastChat's single-answer prompts (MT-Bench's `single-v1` family).

Any generation backend can judge: a URL for a strong model (MT-Bench used GPT-4), or a local model, which is weak.
A judgement whose rating cannot be read is kept and counted as an error, never given a score.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

# FastChat llm_judge/common.py: the `[[rating]]` output format, and its fallback for judges that drop a bracket.
RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")
NEEDS_REFERENCE = ("math", "reasoning", "coding")  # FastChat's NEED_REF_CATS (less arena-hard, not in MT-Bench)
# Every FastChat single-answer prompt shows this example; a weak judge copies the instruction back, and FastChat would
# read the copied 5 as its verdict. finch reads a copy of the example as no rating at all.
PROMPT_EXAMPLE = 'for example: "Rating: [[5]]"'


@dataclass(frozen=True)
class JudgePrompt:
    """One entry of FastChat's judge_prompts.jsonl, e.g. single-v1 or single-math-v1-multi-turn."""

    name: str
    system_prompt: str
    prompt_template: str

    def messages(self, **fields: str) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": self.prompt_template.format(**fields)},
        ]


def prompt_name(category: str, turn: int) -> str:
    """The prompt FastChat uses for a question's category and turn: reference-guided where answers are checkable."""
    return ("single-math-v1" if category in NEEDS_REFERENCE else "single-v1") + ("-multi-turn" if turn == 2 else "")


def parse_rating(judgement: str, low: float = 1, high: float = 10) -> float | None:
    """The judge's rating as FastChat reads it: the first `[[n]]`, else the first `[n]`. None when there is none,
    or when it lies outside [low, high] (FastChat would score an out-of-range number; it is no rating on this scale).
    Unlike FastChat, a copy of the prompt's own example (`Rating: [[5]]`) is skipped, not read as the verdict."""
    judgement = judgement.replace(PROMPT_EXAMPLE, "")
    match = RATING.search(judgement) or RATING_BACKUP.search(judgement)
    if not match:
        return None
    value = float(ast.literal_eval(match.group(1)))
    return value if low <= value <= high else None


@dataclass
class Judgement:
    key: str  # what was judged, e.g. "81/turn1"
    prompt: str  # the judge prompt's name
    text: str  # the judge's whole answer
    rating: float | None  # None: unparseable, counted as an error
    truncated: bool = False


def judge(backend, requests: list[tuple[str, JudgePrompt, dict[str, str]]], max_tokens: int) -> list[Judgement]:
    """Grade every (key, prompt, fields) with one greedy judge call each (FastChat judges at temperature 0)."""
    from finch.inference import GenerationParams

    params = GenerationParams(temperature=0, max_tokens=max_tokens)
    answers = backend.chat([prompt.messages(**fields) for _, prompt, fields in requests], params)
    return [
        Judgement(key, prompt.name, answer.text, parse_rating(answer.text), answer.finish_reason == "length")
        for (key, prompt, _), [answer] in zip(requests, answers)
    ]


def summarise(judgements: list[Judgement]) -> tuple[list[float], float]:
    """The ratings that could be read, and the share of judgements that could not (the judge's error rate)."""
    ratings = [j.rating for j in judgements if j.rating is not None]
    return ratings, (len(judgements) - len(ratings)) / len(judgements) if judgements else 0.0


def judge_settings(judge: str | None, judge_max_tokens: int | None) -> tuple[str, int]:
    """The judge and its longest judgement: 1024 tokens for a model behind a URL, 256 for a local one."""
    from finch.errors import UsageError
    from finch.inference.loader import is_url

    if judge is None:
        raise UsageError("this benchmark needs --judge: a model reference, or the URL of a strong model's API.")
    return judge, judge_max_tokens or (1024 if is_url(judge) else 256)


def judge_notes(judge: str, judge_max_tokens: int, builtin: tuple[str, ...]) -> list[str]:
    """What a reader of the report should know about the judge (`builtin`: the built-in student's names)."""
    from finch.inference.loader import is_url

    notes = [
        f"judge: {judge} (greedy, at most {judge_max_tokens} tokens a judgement); unparseable judgements are "
        "counted in judge_error_rate and never scored"
    ]
    if judge in builtin:
        notes.append(
            "WARNING: the judge is the built-in 270M base model, far too weak to grade: its ratings are close to "
            "noise and not comparable with published MT-Bench scores. Use --judge URL with a strong model (MT-Bench "
            "used GPT-4)."
        )
    elif not is_url(judge):
        notes.append(
            "the judge is a local model: small judges grade unreliably; a strong judge (--judge URL) gives scores "
            "worth comparing with published ones."
        )
    return notes
