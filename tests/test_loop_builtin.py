"""The LAB loop on one leaf with the built-in models, as a user runs it, offline: `finch data generate` (the built-in
teacher, full pipeline) → `finch train` with its defaults → base vs tuned on the leaf's held-out seed question →
`finch export` to q4_k_m, asked the same question through llama.cpp. (`finch quickstart` runs the same loop on every
leaf of the sample taxonomy; at ~30 minutes it is the README's demo, not a test.)"""

from __future__ import annotations

import json
import re

import pytest

from finch.evaluate.branch import held_out_base_vs_tuned
from finch.taxonomy import sample_taxonomy_dir
from tests.conftest import run_finch
from tests.sdg.helpers import rows

pytestmark = pytest.mark.slow

LEAF = sample_taxonomy_dir() / "compositional_skills" / "formatting" / "iso_dates"


@pytest.fixture(scope="module")
def loop(builtin_home, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("loop")
    env = builtin_home["env"]
    data = run_finch(
        "data",
        "generate",
        "--taxonomy",
        str(sample_taxonomy_dir()),
        "--leaves",
        str(LEAF),
        "--scale",
        "2",
        "--output",
        str(work / "data"),
        env=env,
        timeout=1800,
    )
    assert data.returncode == 0, data.stderr[-3000:]
    train = run_finch("train", "--data", str(work / "data"), "--output", str(work / "run"), env=env, timeout=1800)
    assert train.returncode == 0, train.stderr[-3000:]
    return {"work": work, "env": env, "models_dir": builtin_home["models_dir"]}


def test_the_teacher_writes_judged_rows_in_the_leafs_form(loop):
    report = json.loads((loop["work"] / "data" / "report.json").read_text())
    [leaf] = report["leaves"]
    assert report["complete"] and leaf["test"] == 1 and leaf["seed_rows"] == 6
    assert [s["stage"] for s in leaf["stages"]] == [
        "instructions",
        "judge_instructions",
        "responses",
        "judge_responses",
        "dedup",
    ]
    generated = [r for r in rows(loop["work"] / "data" / "train.jsonl") if r["metadata"].get("source") != "seed"]
    assert len(generated) >= 7  # of 14 asked: an instruct teacher writes most of them in the form
    dates = [r["messages"][1]["content"] for r in generated]
    assert sum(len(d) == 10 and d[4] == d[7] == "-" for d in dates) >= 0.8 * len(dates), dates


def iso_date(text: str) -> bool:
    return re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()) is not None


def test_the_tuned_model_answers_the_held_out_question_in_the_skills_form_and_its_export_does_too(loop):
    from finch.inference import GenerationParams, load_backend

    run_yaml = (loop["work"] / "run" / "run.yaml").read_text()
    assert "lr: 0.002" in run_yaml and "epochs: 10.0" in run_yaml  # the defaults: lr by the model's size, 10 epochs
    [held_out] = rows(loop["work"] / "data" / "test.jsonl")
    report = held_out_base_vs_tuned("gemma-3-270m", str(loop["work"] / "run"), [held_out], loop["models_dir"])
    [question] = report["questions"]
    assert question["facts"] == ["2030-12-25"]  # "25/12/2030, written the European way (day first)"
    # the base model repeats the question and rambles; the tuned one answers with a date and nothing else (whether
    # it is the right date, day and month read the European way, is the key-fact count the report gives)
    assert not iso_date(question["answers"]["base"]["answer"]), question
    assert iso_date(question["answers"]["tuned"]["answer"]), question

    exported = run_finch(
        "export",
        "--adapter",
        str(loop["work"] / "run"),
        "--format",
        "gguf",
        "--quant",
        "q4_k_m",
        env=loop["env"],
        timeout=1800,
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    [gguf] = list((loop["work"] / "run").glob("exports/*/*.gguf"))
    backend = load_backend(str(gguf), loop["models_dir"], ctx=512)
    try:
        [[answer]] = backend.chat([held_out["messages"][:1]], GenerationParams(temperature=0, max_tokens=32))
    finally:
        backend.close()
    assert iso_date(answer.text) and answer.finish_reason == "stop", answer
