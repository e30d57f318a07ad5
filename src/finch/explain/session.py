"""One `finch explain` call: load the model (and the base), explain a prompt or a leaf's held-out questions, write
everything out. Progress goes through finch.progress, so the CLI draws it and a library caller sees nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from finch.errors import UsageError
from finch.explain.config import ExplainConfig
from finch.explain.models import load_explained
from finch.explain.report import write_explanation
from finch.explain.run import Explanation, explain_prompt, held_out_questions, passage_prompt
from finch.fileio import atomic_write_json
from finch.models.resolve import resolve_model
from finch.progress import stages

SECONDS_PER_ANSWER = 20  # the built-in model on 2 cores: answer, two traces and the plots


@dataclass
class Explained:
    question: str
    explanation: Explanation
    folder: Path


def _messages(system: str | None, question: str) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]


def run_explain(config: ExplainConfig, prompt: str | None, models_dir: Path, output: Path) -> list[Explained]:
    if (prompt is None) == (config.leaf is None):
        raise UsageError("give a prompt to explain, or --leaf for a knowledge leaf's held-out questions (not both).")
    questions = held_out_questions(config.leaf) if config.leaf else []
    if config.leaf and not questions:
        raise UsageError(f"--leaf {config.leaf}: the leaf holds no held-out question (it needs two seed questions).")
    for ref in (config.model, config.compare):
        if ref:
            resolve_model(ref, models_dir)  # a bad reference is one line before any progress is drawn
    count = len(questions) or 1
    weights = [("loading", 15.0)] + [(f"answer {i + 1} of {count}", SECONDS_PER_ANSWER) for i in range(count)]
    done = []
    with stages("Explaining", weights) as advance:
        advance("loading")
        model = load_explained(config.model, models_dir)
        base = load_explained(config.compare, models_dir) if config.compare else None
        for i in range(count):
            advance(f"answer {i + 1} of {count}")
            if questions:
                held = questions[i]
                messages = _messages(config.system, passage_prompt(held))
                explanation = explain_prompt(
                    model, messages, config.max_tokens, base, held.passage, held.reference, held.question
                )
                folder = output / f"question-{i + 1}"
            else:
                messages = _messages(config.system, prompt)
                explanation = explain_prompt(model, messages, config.max_tokens, base)
                folder = output
            write_explanation(explanation, folder, config.layer_plots)
            done.append(Explained(questions[i].question if questions else prompt, explanation, folder))
    if questions:
        atomic_write_json(output / "grounding.json", grounding_table(done, questions))
    return done


def grounding_table(done: list[Explained], questions) -> list[dict]:
    return [
        {
            "question": q.question,
            "reference": q.reference,
            "answer": d.explanation.answer,
            "folder": d.folder.name,
            **{label: g.to_dict() for label, g in d.explanation.grounding.items()},
        }
        for q, d in zip(questions, done)
    ]
