"""Shared pieces of the SDG tests: the sample taxonomy's leaves, one call that runs a generation, row readers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from finch.inference.http_backend import HttpBackend
from finch.sdg import GenerateOptions, generate_dataset, load_pipeline
from finch.sdg.generate import LeafPlan
from finch.taxonomy import check_taxonomy, sample_taxonomy_dir

MARKERS = ("OFFTOPIC", "GARBLED", "BADANSWER", "LONG", "WRONG")


def skill_plan(name: str, examples: list[dict], flavour: str = "skills_freeform", **fields) -> LeafPlan:
    """A skill leaf's plan, as plan_leaf would make it, for tests of the parts that read one."""
    settings = {"sources": [], "target": 4, "fingerprint": "f", **fields}
    return LeafPlan(name=name, slug=name, kind="skill", flavour=flavour, task=name, examples=examples, **settings)


def sample_leaves():
    report = check_taxonomy([sample_taxonomy_dir()])
    assert report.ok
    return report.leaves


def seed_examples(leaf) -> list[dict[str, str]]:
    """A leaf's seed examples in order: `user` as SDG's rows ask it, `answer`, and `key`, the text that tells it
    apart from the others in a prompt (the passage of a grounded skill, where all ask the same question)."""
    seeds = leaf.leaf.seed_examples
    if hasattr(leaf.leaf, "document_outline"):
        pairs = [
            (qa.question.strip(), qa.answer.strip(), qa.question.strip())
            for e in seeds
            for qa in e.questions_and_answers
        ]
    else:
        pairs = [
            (
                (f"{e.context.strip()}\n\n" if e.context else "") + e.question.strip(),
                e.answer.strip(),
                (e.context or e.question).strip(),
            )
            for e in seeds
        ]
    return [{"user": user, "answer": answer, "key": key} for user, answer, key in pairs]


def held_out(leaf) -> list[dict[str, str]]:
    """The leaf's test set by its rule, restated: every 5th seed example, or the last of two or more."""
    seeds = seed_examples(leaf)
    return seeds[4::5] or seeds[-1:] * (len(seeds) >= 2)


def knowledge_held_out() -> tuple[str, ...]:
    """The sample knowledge leaf's held-out questions: what the scripted teacher's `testdup` items repeat."""
    return tuple(e["user"] for leaf in sample_leaves() if leaf.name.startswith("knowledge") for e in held_out(leaf))


def generate(url: str, output: Path, pipeline: str = "full", workers: int = 4, retries: int = 0, **options):
    backend = HttpBackend(url, retries=retries)
    try:
        return generate_dataset(
            sample_leaves(),
            backend,
            load_pipeline(pipeline),
            GenerateOptions(output=output, workers=workers, **options),
        )
    finally:
        backend.close()


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def journals(output: Path) -> dict[str, list[dict]]:
    """Every journal record, by journal file name."""
    return {str(p.relative_to(output)): rows(p) for p in sorted((output / ".work").glob("*/*.jsonl"))}


if __name__ == "__main__":  # the kill -9 test runs a generation in a child process it can kill
    generate(sys.argv[1], Path(sys.argv[2]), workers=int(sys.argv[3]))


def generated_rows(path: Path) -> list[dict]:
    """train.jsonl less the shown seed examples every leaf adds as they are."""
    return [r for r in rows(path) if r["metadata"].get("source") != "seed"]


def shown_seed_count(leaves) -> int:
    """How many seed examples the leaves show the teacher (and add to train.jsonl): all but the held-out ones."""
    return sum(len(seed_examples(leaf)) - len(held_out(leaf)) for leaf in leaves)
