"""Multiple-choice questions scored by log-likelihood, as lm-eval scores MMLU with its hf backend, in its two forms:

- letters (lm-eval's `mmlu`): the prompt is "question\\nA. …\\nB. …\\nC. …\\nD. …\\nAnswer:", each choice is the
  continuation " A" … " D", and the model's answer is the likeliest letter;
- choice text (lm-eval's `mmlu_continuation`, the cloze form OLMES uses for models too small for letters): the prompt
  is "Question: question\\nAnswer:", each choice is the continuation " choice text", and the model's answer is the
  choice with the highest log-likelihood per character (lm-eval's acc_norm), so longer choices are not penalised.

Picking a letter is a skill of its own that models under ~1B parameters barely have: their letter accuracy is mostly
their bias toward one letter, and fine-tuning moves that bias whatever the model learned. The choice-text form asks
only whether the model finds the right answer likelier, so it measures what a small model knows. No generation in
either, so a small model's rambling cannot hide what it knows.

Done here rather than through lm-eval: lm-eval would add some twenty packages (and pins python-dateutil below what
the environment has), and its local tasks load through `datasets` with task YAML files; the scoring itself is this
short, and it runs on any finch model reference, run directories with adapters included. On the built-in model it
reproduces lm-eval 0.4.13's hf-backend log-likelihoods to 1e-5 (tests/evaluate/lm_eval_reference.json).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from finch.errors import UsageError

LETTERS = "ABCD"


@dataclass
class MCQ:
    question: str
    choices: list[str]
    answer: int  # index of the right choice
    group: str  # the taxonomy leaf (mmlu_branch) or the MMLU subject

    def prompt(self) -> str:
        lines = [self.question.strip(), *(f"{LETTERS[i]}. {c}" for i, c in enumerate(self.choices)), "Answer:"]
        return "\n".join(lines)

    def text_prompt(self) -> str:
        return f"Question: {self.question.strip()}\nAnswer:"


def load_knowledge_mcq(path: Path, limit: int | None = None) -> list[MCQ]:
    """The SDG knowledge MCQs: a dataset folder's knowledge_mcq.jsonl (rows: leaf, question, choices, answer)."""
    file = path / "knowledge_mcq.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise UsageError(f"{file}: no such file; pass --data with a dataset folder made by `finch data generate`.")
    questions = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            mcq = MCQ(row["question"], [str(c) for c in row["choices"]], int(row["answer"]), row.get("leaf") or "-")
            if len(mcq.choices) != 4 or not 0 <= mcq.answer < 4:
                raise ValueError("four choices and an answer index 0-3 expected")
        except (ValueError, KeyError, TypeError) as e:
            raise UsageError(f"{file}:{number}: not a knowledge MCQ row ({type(e).__name__}: {e}).") from None
        questions.append(mcq)
    if not questions:
        raise UsageError(f"{file}: holds no questions (the teacher wrote no usable MCQ); nothing to score.")
    per_group: dict[str, int] = {}
    kept = []
    for q in questions:  # --limit: at most N questions per leaf, so every leaf is still measured
        per_group[q.group] = per_group.get(q.group, 0) + 1
        if limit is None or per_group[q.group] <= limit:
            kept.append(q)
    return kept


def load_mmlu_csv(folder: Path, limit: int | None = None) -> list[MCQ]:
    """MMLU in its original release layout (Hendrycks et al.): test/SUBJECT_test.csv, rows question,A,B,C,D,answer."""
    test = folder / "test" if (folder / "test").is_dir() else folder
    files = sorted(test.glob("*_test.csv"))
    if not files:
        raise UsageError(
            f"--data {folder}: no *_test.csv files; mmlu needs the MMLU data on disk (the original release's data/ "
            "folder, e.g. from https://people.eecs.berkeley.edu/~hendrycks/data.tar); finch downloads nothing."
        )
    questions = []
    for file in files:
        subject = file.name.removesuffix("_test.csv")
        with file.open(encoding="utf-8", newline="") as f:
            rows = [r for r in csv.reader(f) if r]
        for number, row in enumerate(rows[:limit], 1):
            if len(row) != 6 or row[5].strip() not in LETTERS:
                raise UsageError(f"{file}:{number}: expected question,A,B,C,D,answer with answer one of A-D.")
            questions.append(MCQ(row[0], row[1:5], LETTERS.index(row[5].strip()), subject))
    return questions


def choice_loglikelihoods(model, tokenizer, prompt: str, continuations: list[str]) -> list[float]:
    """log P(continuation | prompt) for each continuation, summed over its tokens. As lm-eval's hf backend: the
    continuation's tokens are those of prompt+continuation after the prompt's count (lm-eval's _encode_pair)."""
    import torch

    context = tokenizer(prompt).input_ids
    scores = []
    for continuation in continuations:
        whole = tokenizer(prompt + continuation).input_ids
        target = whole[len(context) :]
        with torch.no_grad():
            logits = model(torch.tensor([whole])).logits[0, len(whole) - len(target) - 1 : -1].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        scores.append(float(logprobs[torch.arange(len(target)), torch.tensor(target)].sum()))
    return scores


def score_mcqs(model, tokenizer, questions: list[MCQ]) -> list[float]:
    """Letters: 1.0 where the likeliest letter is the right one, else 0.0 (lm-eval's mmlu acc)."""
    correct = []
    for q in questions:
        scores = choice_loglikelihoods(model, tokenizer, q.prompt(), [f" {LETTERS[i]}" for i in range(len(q.choices))])
        correct.append(_right(scores, q.answer))
    return correct


def score_mcqs_by_text(model, tokenizer, questions: list[MCQ]) -> list[float]:
    """Choice text: 1.0 where the choice with the highest log-likelihood per character is the right one, else 0.0
    (lm-eval's mmlu_continuation acc_norm)."""
    correct = []
    for q in questions:
        scores = choice_loglikelihoods(model, tokenizer, q.text_prompt(), [f" {c}" for c in q.choices])
        per_char = [score / max(len(c), 1) for score, c in zip(scores, q.choices)]
        correct.append(_right(per_char, q.answer))
    return correct


def _right(scores: list[float], answer: int) -> float:
    """1.0 where the highest score is the right choice's, else 0.0."""
    return float(max(range(len(scores)), key=scores.__getitem__) == answer)


def group_accuracy(questions: list[MCQ], correct: list[float]) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for q, c in zip(questions, correct):
        groups.setdefault(q.group, []).append(c)
    return {group: sum(v) / len(v) for group, v in groups.items()}
