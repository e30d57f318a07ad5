"""Base against tuned on a taxonomy's own questions, leaf by leaf: did the tuned model get better at what its leaves
teach? `mt_bench_branch` grades skill-leaf answers with a judge against the seed answers (InstructLab's
mt_bench_branch); `quick_base_vs_tuned` scores with ROUGE-L instead, fast enough for the quickstart."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from finch.errors import UsageError
from finch.evaluate.data import EvalSample

# The reference-guided single-answer prompt: a seed answer is a reference, as InstructLab's branch judging uses it.
BRANCH_PROMPT = "single-math-v1"


def taxonomy_samples(
    taxonomy: Path,
    kinds: tuple[str, ...] = ("skill",),
    per_leaf: int | None = None,
    documents_cache: Path | None = None,
) -> list[EvalSample]:
    """Seed questions of a taxonomy's valid leaves of `kinds`, each with its seed answer as the reference."""
    from finch.taxonomy import check_taxonomy
    from finch.taxonomy.seed_rows import seed_rows

    report = check_taxonomy([taxonomy], skip_documents=True, documents_cache=documents_cache)
    return samples_from_rows(seed_rows(report), kinds, per_leaf)


def held_out_samples(data: Path, kinds: tuple[str, ...], per_leaf: int | None = None) -> tuple[list[EvalSample], str]:
    """The questions of leaves of `kinds` that no training saw, and where they came from: a dataset's test.jsonl (its
    folder or the file), or else a taxonomy's held-out seed examples (finch.taxonomy.hold_out: the ones the seed
    dataset and `finch data generate` keep out of training)."""
    from finch.evaluate.data import read_rows

    file = data / "test.jsonl" if data.is_dir() else data
    if file.is_file():
        return samples_from_rows(read_rows(file), kinds, per_leaf), str(file)
    from finch.taxonomy import check_taxonomy
    from finch.taxonomy.seed_rows import seed_rows, split_seed_rows

    held_out = split_seed_rows(seed_rows(check_taxonomy([data], skip_documents=True)))[1]
    return samples_from_rows(held_out, kinds, per_leaf), f"the held-out seed examples of {data}"


def samples_from_rows(rows: list[dict], kinds: tuple[str, ...], per_leaf: int | None) -> list[EvalSample]:
    """Rows of leaves of `kinds` (metadata.leaf and metadata.kind; rows without them are left out)."""
    samples, taken = [], {}
    for row in rows:
        leaf, kind = (row.get("metadata") or {}).get("leaf"), (row.get("metadata") or {}).get("kind")
        if kind not in kinds or (per_leaf is not None and taken.get(leaf, 0) >= per_leaf):
            continue
        taken[leaf] = taken.get(leaf, 0) + 1
        samples.append(EvalSample(row["messages"][:-1], row["messages"][-1]["content"], leaf))
    return samples


def answer_all(
    models: dict[str, str], samples: list[EvalSample], models_dir: Path, max_tokens: int, backend: str = "auto"
) -> dict[str, list[str]]:
    """Greedy answers of every model to every sample, one model in memory at a time."""
    from finch.inference import GenerationParams, load_backend

    answers = {}
    for label, ref in models.items():
        model = load_backend(ref, models_dir, backend=backend, ctx=2048)
        try:
            params = GenerationParams(temperature=0, max_tokens=max_tokens)
            completions = model.chat([s.messages for s in samples], params)
        finally:
            model.close()
        answers[label] = [c[0].text.strip() for c in completions]
    return answers


@dataclass
class LeafVerdict:
    leaf: str
    questions: int
    base: float | None
    tuned: float | None
    verdict: str  # IMPROVED | REGRESSED | UNCHANGED | NO SCORE

    @property
    def delta(self) -> float | None:
        return None if self.base is None or self.tuned is None else self.tuned - self.base


def leaf_verdicts(samples: list[EvalSample], base: list[float | None], tuned: list[float | None]) -> list[LeafVerdict]:
    """Per leaf, the mean score of each model over the questions it got a score for (None: unscored, e.g. an
    unparseable judgement), and whether the tuned model's mean went up, down or stayed."""
    leaves: dict[str, list[int]] = {}
    for i, sample in enumerate(samples):
        leaves.setdefault(sample.leaf or "(no leaf)", []).append(i)
    verdicts = []
    for leaf, indices in leaves.items():
        means = []
        for scores in (base, tuned):
            values = [scores[i] for i in indices if scores[i] is not None]
            means.append(sum(values) / len(values) if values else None)
        if None in means:
            verdict = "NO SCORE"
        else:
            delta = means[1] - means[0]  # below the table's last printed digit counts as no change
            verdict = "IMPROVED" if delta >= 5e-4 else "REGRESSED" if delta <= -5e-4 else "UNCHANGED"
        verdicts.append(LeafVerdict(leaf, len(indices), means[0], means[1], verdict))
    return verdicts


def verdict_rows(verdicts: list[LeafVerdict]) -> list[dict]:
    return [
        {
            "leaf": v.leaf,
            "questions": v.questions,
            "base": v.base,
            "tuned": v.tuned,
            "delta": v.delta,
            "verdict": v.verdict,
        }
        for v in verdicts
    ]


def verdict_markdown(verdicts: list[LeafVerdict], metric: str) -> list[str]:
    def fmt(value):
        return "-" if value is None else f"{value:.3g}"

    lines = [
        "",
        f"## Per leaf ({metric})",
        "",
        "| leaf | questions | base | tuned | delta | verdict |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {v.leaf} | {v.questions} | {fmt(v.base)} | {fmt(v.tuned)} | {fmt(v.delta)} | {v.verdict} |"
        for v in verdicts
    ]
    return lines


def run_mt_bench_branch(
    models: dict[str, str],
    samples: list[EvalSample],
    judge_backend,
    prompt,
    models_dir: Path,
    max_tokens: int,
    judge_max_tokens: int,
):
    """Answers of base and tuned graded 1-10 against the seed answers. Returns per-model results, per-sample ratings,
    the leaf verdicts and the judgements."""
    from finch.evaluate.judge import judge, summarise

    answers = answer_all(models, samples, models_dir, max_tokens)
    opened = judge_backend()
    try:
        judgements = {
            label: judge(
                opened,
                [
                    (
                        f"{i}",
                        prompt,
                        {
                            "question": s.messages[-1]["content"],
                            "answer": answers[label][i],
                            "ref_answer_1": s.reference,
                        },
                    )
                    for i, s in enumerate(samples)
                ],
                judge_max_tokens,
            )
            for label in models
        }
    finally:
        opened.close()
    results, per_sample = {}, {}
    for label in models:
        ratings, error_rate = summarise(judgements[label])
        results[label] = {
            "score": sum(ratings) / len(ratings) if ratings else None,
            "judge_error_rate": error_rate,
            "judgements": len(judgements[label]),
        }
        per_sample[label] = {"score": ratings}
    verdicts = leaf_verdicts(samples, *([j.rating for j in judgements[label]] for label in ("base", "tuned")))
    return results, per_sample, verdicts, answers, judgements


def held_out_base_vs_tuned(base: str, tuned: str, rows: list[dict], models_dir: Path, max_tokens: int = 128) -> dict:
    """For the quickstart: greedy answers of base and tuned to every held-out question of `rows` (chat rows with
    metadata.leaf/kind, e.g. a dataset's test.jsonl), scored by key facts (finch.evaluate.key_facts); where the
    reference is a JSON object, also whether the answer is one with the same fields. key_fact_report's report, with
    `json_fields` per answer and per leaf (None where it does not apply)."""
    from finch.evaluate.key_facts import key_fact_report
    from finch.evaluate.metrics import json_fields

    samples = samples_from_rows(rows, ("knowledge", "skill"), None)
    if not samples:
        raise UsageError("no questions to compare on: the rows hold no knowledge or skill leaf.")
    labels = ("base", "tuned")
    answers = answer_all(dict(zip(labels, (base, tuned))), samples, models_dir, max_tokens, "transformers")
    report = key_fact_report(samples, answers)
    for row in report["questions"]:
        for label in labels:
            row["answers"][label]["json_fields"] = json_fields(row["answers"][label]["answer"], row["reference"])
    for leaf in report["leaves"]:
        checked = [row["answers"] for row in report["questions"] if row["leaf"] == leaf["leaf"]]
        checked = [a for a in checked if a["base"]["json_fields"] is not None]
        leaf["json_checked"] = len(checked)
        leaf["json_fields"] = {label: sum(a[label]["json_fields"] for a in checked) for label in labels}
    return report
