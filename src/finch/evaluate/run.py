"""Run a benchmark on one or more models (e.g. base and tuned) and write the report."""

from __future__ import annotations

import json
from pathlib import Path

from finch.errors import UsageError

BENCHMARKS = ("metrics", "perplexity", "mt_bench", "mt_bench_branch", "mmlu", "mmlu_branch", "key_facts", "human")
BASE_VS_TUNED = ("mt_bench_branch", "mmlu_branch")
DEFAULT_MAX_TOKENS = {"mt_bench_branch": 256, "key_facts": 256}
# MT-Bench answers: FastChat's 1024 tokens a turn for a model behind a URL; 128 for a local one, which keeps
# `--limit 2` with the built-in model and judge to minutes on two cores (a 270M model's answers lose nothing by it).
MT_BENCH_TOKENS = {"url": 1024, "local": 128}
BUILTIN = ("gemma-3-270m", "default")


def evaluate(models: dict[str, str], benchmark: str, data: Path | None, output: Path, models_dir: Path,
             limit: int | None = None, max_tokens: int | None = None, judge: str | None = None,
             judge_max_tokens: int | None = None, imports: list[Path] | None = None,
             samples: int = 3) -> dict[str, dict[str, float]]:  # fmt: skip
    """`models` maps a label (base, tuned, ...) to a model reference. Returns {label: {metric: value}}.
    human: writes the grading sheet (`samples` answers per prompt and model), or with `imports` reads it back."""
    from finch.evaluate.report import plot_per_prompt, write_report

    if benchmark not in BENCHMARKS:
        raise UsageError(f"--benchmark {benchmark}: choose one of {', '.join(BENCHMARKS)}.")
    if data is None and benchmark in ("metrics", "perplexity") or benchmark == "human" and not (data or imports):
        raise UsageError(f"--benchmark {benchmark} needs --data (a dataset folder with test.jsonl, or a file).")
    if benchmark in BASE_VS_TUNED and set(models) != {"base", "tuned"}:
        raise UsageError(f"--benchmark {benchmark} compares a tuned model with its base: pass --model and --base.")
    answer_tokens = max_tokens  # mt_bench picks its own default per model
    max_tokens = max_tokens or DEFAULT_MAX_TOKENS.get(benchmark, 128)
    notes = [f"models: {', '.join(f'{label} = {ref}' for label, ref in models.items())}", f"data: {data}"]
    if any(ref in BUILTIN for ref in models.values()):
        notes.append("gemma-3-270m is a 270M base model: expect low absolute scores; compare base against tuned.")
    extra = {}
    if benchmark == "metrics":
        results, per_sample = _metrics(models, data, models_dir, limit, max_tokens, notes)
    elif benchmark == "perplexity":
        results, per_sample = _perplexity(models, data, models_dir, limit, notes), None
    elif benchmark == "mt_bench":
        results, per_sample, extra = _mt_bench(models, data, output, models_dir, limit, answer_tokens, judge,
                                               judge_max_tokens, notes)  # fmt: skip
    elif benchmark == "human":
        results, per_sample, extra = _human(models, data, output, models_dir, limit, max_tokens, imports, samples,
                                            notes)  # fmt: skip
    elif benchmark in ("mmlu", "mmlu_branch"):
        results, per_sample, extra = _mcq(benchmark, models, data, models_dir, limit, notes)
    elif benchmark == "key_facts":
        results, per_sample, extra = _key_facts(models, data, models_dir, limit, max_tokens, notes)
    else:
        results, per_sample, extra = _mt_bench_branch(models, data, output, models_dir, limit, max_tokens, judge,
                                                      judge_max_tokens, notes)  # fmt: skip
    markdown = extra.pop("markdown", None)
    write_report(output, benchmark, results, notes, per_sample, extra, markdown)
    if extra.get("per_prompt"):
        plot_per_prompt(output / f"{benchmark}-per-prompt.png", benchmark, extra["per_prompt"], extra["metric"])
    if extra.get("leaves"):
        per_leaf = {label: {row["leaf"]: row[label] for row in extra["leaves"] if row.get(label) is not None}
                    for label in results}  # fmt: skip
        plot_per_prompt(output / f"{benchmark}-per-leaf.png", benchmark, per_leaf, extra["metric"], group="leaf")
    return results


def judge_notes(judge: str, judge_max_tokens: int) -> list[str]:
    from finch.inference.loader import is_url

    notes = [f"judge: {judge} (greedy, at most {judge_max_tokens} tokens a judgement); unparseable judgements are "
             "counted in judge_error_rate and never scored"]  # fmt: skip
    if judge in BUILTIN:
        notes.append("WARNING: the judge is the built-in 270M base model, far too weak to grade: its ratings are "
                     "close to noise and not comparable with published MT-Bench scores. Use --judge URL with a "
                     "strong model (MT-Bench used GPT-4).")  # fmt: skip
    elif not is_url(judge):
        notes.append("the judge is a local model: small judges grade unreliably; a strong judge (--judge URL) gives "
                     "scores worth comparing with published ones.")  # fmt: skip
    return notes


def _judge_settings(judge: str | None, judge_max_tokens: int | None) -> tuple[str, int]:
    from finch.inference.loader import is_url

    if judge is None:
        raise UsageError("this benchmark needs --judge: a model reference, or the URL of a strong model's API.")
    return judge, judge_max_tokens or (1024 if is_url(judge) else 256)


def _mt_bench(models, data, output, models_dir, limit, max_tokens, judge, judge_max_tokens, notes):
    from finch.evaluate.mt_bench import load_mt_bench, run_mt_bench
    from finch.inference import load_backend
    from finch.inference.loader import is_url

    judge, judge_max_tokens = _judge_settings(judge, judge_max_tokens)
    bench = load_mt_bench(data, limit)
    notes[1] = f"data: {bench.source} ({len(bench.questions)} questions, 2 turns each)"
    tokens = {label: max_tokens or MT_BENCH_TOKENS["url" if is_url(ref) else "local"] for label, ref in models.items()}
    notes.append("answers: FastChat's per-category temperatures, seed 0, at most "
                 + ", ".join(f"{n} tokens a turn ({label})" for label, n in tokens.items()))  # fmt: skip
    notes += judge_notes(judge, judge_max_tokens)
    results, per_sample, categories, per_question = run_mt_bench(
        lambda label: load_backend(models[label], models_dir, ctx=4096),
        lambda: load_backend(judge, models_dir, ctx=8192),
        bench, tokens, judge_max_tokens, output,
    )  # fmt: skip
    return results, per_sample, {"judge": judge, "categories": categories, "per_prompt": per_question,
                                 "metric": "mean rating of both turns"}  # fmt: skip


def _metrics(models, data, models_dir, limit, max_tokens, notes):
    from finch.evaluate.data import load_eval_samples
    from finch.evaluate.metrics import score
    from finch.inference import GenerationParams, load_backend

    samples = load_eval_samples(data, limit)
    notes.append(f"{len(samples)} held-out prompts, greedy answers of at most {max_tokens} tokens")
    results, per_sample = {}, {}
    for label, ref in models.items():
        with load_backend(ref, models_dir, ctx=2048) as backend:
            answers = backend.chat(
                [s.messages for s in samples], GenerationParams(temperature=0, max_tokens=max_tokens)
            )
        results[label], per_sample[label] = score([a[0].text.strip() for a in answers], [s.reference for s in samples])
    return results, per_sample


def _perplexity(models, data, models_dir, limit, notes):
    from finch.evaluate.perplexity import load_texts, perplexity
    from finch.inference import load_backend

    texts = load_texts(data, limit)
    notes.append("perplexity: token-weighted, sliding windows of 512 tokens with stride 256 (HF convention)")
    results = {}
    for label, ref in models.items():
        backend = load_backend(ref, models_dir, backend="transformers", dtype="float32")
        results[label] = perplexity(backend.model, backend.tokenizer, texts)
    return results


def _mt_bench_branch(models, data, output, models_dir, limit, max_tokens, judge, judge_max_tokens, notes):
    from finch.evaluate.branch import (
        BRANCH_PROMPT,
        run_mt_bench_branch,
        taxonomy_samples,
        verdict_markdown,
        verdict_rows,
    )
    from finch.evaluate.mt_bench import packaged_judge_prompt
    from finch.fileio import atomic_write_text
    from finch.inference import load_backend

    judge, judge_max_tokens = _judge_settings(judge, judge_max_tokens)
    if data is None:
        raise UsageError("--benchmark mt_bench_branch needs --data: the taxonomy (or the leaves) whose skills to test.")
    samples = taxonomy_samples(data, ("skill",), per_leaf=limit)
    if not samples:
        raise UsageError(f"--data {data}: no valid skill leaf there; mt_bench_branch asks the skill leaves' questions.")
    prompt = packaged_judge_prompt(BRANCH_PROMPT)
    notes.append(
        f"{len(samples)} seed questions of {len({s.leaf for s in samples})} skill leaves"
        + (f" (at most {limit} a leaf)" if limit else "")
        + f"; greedy answers of at most {max_tokens} "
        f"tokens, graded 1-10 with FastChat's {BRANCH_PROMPT} prompt, the seed answer as the reference"
    )
    notes.append(
        "the seed questions are the leaves' own examples: a model trained on them has seen them (SDG's "
        "test.jsonl holds them out of the synthetic training data, not out of seed-only training)"
    )
    notes += judge_notes(judge, judge_max_tokens)
    results, per_sample, verdicts, answers, judgements = run_mt_bench_branch(
        models, samples, lambda: load_backend(judge, models_dir, ctx=8192), prompt, models_dir, max_tokens,
        judge_max_tokens,
    )  # fmt: skip
    atomic_write_text(output / "judgements.jsonl", "".join(
        json.dumps({"leaf": s.leaf, "question": s.messages[-1]["content"], "reference": s.reference,
                    **{label: {"answer": answers[label][i], "judgement": judgements[label][i].text,
                               "rating": judgements[label][i].rating} for label in models}}, ensure_ascii=False) + "\n"
        for i, s in enumerate(samples)))  # fmt: skip
    return (
        results,
        per_sample,
        {
            "judge": judge,
            "leaves": verdict_rows(verdicts),
            "metric": "mean judge rating",
            "markdown": verdict_markdown(verdicts, "mean judge rating, 1-10"),
        },
    )


def _mcq(benchmark, models, data, models_dir, limit, notes):
    from finch.evaluate.branch import LeafVerdict, verdict_markdown, verdict_rows
    from finch.evaluate.mcq import group_accuracy, load_knowledge_mcq, load_mmlu_csv, score_mcqs
    from finch.inference import load_backend

    if data is None:
        raise UsageError(f"--benchmark {benchmark} needs --data: " + (
            "a dataset folder holding knowledge_mcq.jsonl (from `finch data generate`)." if benchmark == "mmlu_branch"
            else "the MMLU data folder (test/SUBJECT_test.csv); finch downloads nothing."))  # fmt: skip
    questions = load_knowledge_mcq(data, limit) if benchmark == "mmlu_branch" else load_mmlu_csv(data, limit)
    group = "leaf" if benchmark == "mmlu_branch" else "subject"
    notes.append(f"{len(questions)} four-choice questions in {len({q.group for q in questions})} {group}s"
                 + (f" (at most {limit} a {group})" if limit else "") + "; zero-shot, scored by the log-likelihood "
                 "of ' A'..' D' after 'Answer:' (lm-eval's MMLU prompt and acc), float32 transformers")  # fmt: skip
    results, per_sample, groups = {}, {}, {}
    for label, ref in models.items():
        with load_backend(ref, models_dir, backend="transformers", dtype="float32") as backend:
            correct = score_mcqs(backend.model, backend.tokenizer, questions)
        results[label] = {"accuracy": sum(correct) / len(correct), "questions": len(correct)}
        per_sample[label] = {"accuracy": correct}
        groups[label] = group_accuracy(questions, correct)
    extra = {f"{group}s": groups}
    if benchmark == "mmlu_branch":
        verdicts = [LeafVerdict(leaf, sum(q.group == leaf for q in questions), groups["base"][leaf],
                                groups["tuned"][leaf], "") for leaf in groups["base"]]  # fmt: skip
        for v in verdicts:
            v.verdict = "IMPROVED" if v.delta > 0 else "REGRESSED" if v.delta < 0 else "UNCHANGED"
        extra = {"leaves": verdict_rows(verdicts), "metric": "accuracy",
                 "markdown": verdict_markdown(verdicts, "accuracy")}  # fmt: skip
    return results, per_sample, extra


def _key_facts(models, data, models_dir, limit, max_tokens, notes):
    from finch.evaluate.branch import answer_all, held_out_samples
    from finch.evaluate.key_facts import key_fact_markdown, key_fact_report, key_fact_scores, share_all_held

    if data is None:
        raise UsageError("--benchmark key_facts needs --data: a dataset folder (test.jsonl) or a taxonomy.")
    samples, source = held_out_samples(data, ("knowledge",), limit)
    if not samples:
        raise UsageError(f"--data {data}: no knowledge question there (rows whose metadata.kind is knowledge).")
    report = key_fact_report(samples, answer_all(models, samples, models_dir, max_tokens))
    notes[1] = f"data: {source}"
    notes.append(
        f"{len(samples)} questions of {len(report['leaves'])} knowledge leaves"
        + (f" (at most {limit} a leaf)" if limit else "")
        + f"; greedy answers of at most {max_tokens} tokens"
    )
    notes.append(
        "key facts: the dates, numbers (with units) and names of each reference answer, cut out by fixed rules "
        "(finch.evaluate.key_facts), less those the question states; all_key_facts is the share of questions with "
        "key facts whose answer holds every one. A question without key facts is not counted."
    )
    results, per_sample = {}, {}
    for label in models:
        results[label], per_sample[label] = key_fact_scores(report, label)
    leaves = [{**row, **{label: share_all_held(row, label) for label in models}} for row in report["leaves"]]
    extra = {"leaves": leaves, "questions": report["questions"], "metric": "all_key_facts"}
    return results, per_sample, {**extra, "markdown": key_fact_markdown(report, list(models))}


HUMAN_PROMPTS = 5  # the paper's protocol: 5 prompts x 3 samples, graded 0-5 by each grader


def _human(models, data, output, models_dir, limit, max_tokens, imports, samples, notes):
    from finch.evaluate.data import load_eval_samples
    from finch.evaluate.human import KEY, grade_results, read_grades, write_sheet
    from finch.inference import GenerationParams, load_backend

    if imports:
        grades = read_grades(output, imports)
        key = json.loads((output / KEY).read_text())
        results, per_sample, per_prompt = grade_results(key, grades)
        systems = key["systems"].values()
        notes[:] = [
            f"models: {', '.join(s['label'] + ' = ' + s['model'] for s in systems)}",
            f"{len(grades)} grades (0-5) from {len({g['grader'] for g in grades})} graders, imported from "
            f"{', '.join(str(f) for f in imports)}; the sheet showed models as letters in shuffled rows",
        ]
        return results, per_sample, {"metric": "mean_grade", "per_prompt": per_prompt, "grades": grades}
    prompts = load_eval_samples(data, limit or HUMAN_PROMPTS)
    params = GenerationParams(n=samples, temperature=0.7, max_tokens=max_tokens, seed=0)
    answers = {}
    for label, ref in models.items():
        with load_backend(ref, models_dir, ctx=2048) as backend:
            completions = backend.chat([p.messages for p in prompts], params)
        answers[label] = [[c.text.strip() for c in samples] for samples in completions]
    sheet = write_sheet(output, prompts, answers, models)
    notes.append(f"grading sheet: {sheet} ({len(prompts)} prompts x {len(models)} models x {samples} samples at "
                 f"temperature 0.7, at most {max_tokens} tokens); grade each row 0-5 and put your name in `grader`, "
                 f"then: finch evaluate --benchmark human --import GRADED.csv --output {output}")  # fmt: skip
    results = {label: {"mean_grade": None, "grades": 0, "graders": 0} for label in models}
    return results, None, {"status": "awaiting grades", "sheet": str(sheet)}
