"""human: a grading sheet of sampled answers (models shown as letters, rows shuffled) for people to grade 0-5, and
the graded copies read back into scores."""

from __future__ import annotations

import json

from finch.evaluate.benchmarks import EvalRequest, EvalResult, benchmark

HUMAN_PROMPTS = 5  # the paper's protocol: 5 prompts x 3 samples, graded 0-5 by each grader


@benchmark("human", needs_data="a dataset folder with test.jsonl, or a file (or --import graded sheets).")
def human(request: EvalRequest) -> EvalResult:
    if request.imports:
        return _read_grades(request)
    from finch.evaluate.data import load_eval_samples
    from finch.evaluate.human import write_sheet
    from finch.inference import GenerationParams, load_backend

    prompts = load_eval_samples(request.data, request.limit or HUMAN_PROMPTS)
    params = GenerationParams(n=request.samples, temperature=0.7, max_tokens=request.max_tokens, seed=0)
    answers = {}
    for label, ref in request.models.items():
        with load_backend(ref, request.models_dir, ctx=2048) as backend:
            completions = backend.chat([p.messages for p in prompts], params)
        answers[label] = [[c.text.strip() for c in sampled] for sampled in completions]
    sheet = write_sheet(request.output, prompts, answers, request.models)
    request.notes.append(
        f"grading sheet: {sheet} ({len(prompts)} prompts x {len(request.models)} models x {request.samples} samples "
        f"at temperature 0.7, at most {request.max_tokens} tokens); grade each row 0-5 and put your name in "
        f"`grader`, then: finch evaluate --benchmark human --import GRADED.csv --output {request.output}"
    )
    results = {label: {"mean_grade": None, "grades": 0, "graders": 0} for label in request.models}
    return EvalResult(results, None, {"status": "awaiting grades", "sheet": str(sheet)})


def _read_grades(request: EvalRequest) -> EvalResult:
    from finch.evaluate.human import KEY, grade_results, read_grades

    grades = read_grades(request.output, request.imports)
    key = json.loads((request.output / KEY).read_text())
    results, per_sample, per_prompt = grade_results(key, grades)
    systems = key["systems"].values()
    request.notes[:] = [
        f"models: {', '.join(s['label'] + ' = ' + s['model'] for s in systems)}",
        f"{len(grades)} grades (0-5) from {len({g['grader'] for g in grades})} graders, imported from "
        f"{', '.join(str(f) for f in request.imports)}; the sheet showed models as letters in shuffled rows",
    ]
    return EvalResult(results, per_sample, {"metric": "mean_grade", "per_prompt": per_prompt, "grades": grades})
