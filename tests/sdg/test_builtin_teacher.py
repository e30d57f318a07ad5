"""`finch data generate --pipeline full` with the built-in teacher (Qwen2.5-Coder-1.5B-Instruct, llama.cpp) on the
sample taxonomy: every leaf gets training data, judged by the teacher's probabilities over the rating digits, and
every exam question asked is confirmed or dropped."""

from __future__ import annotations

import json

import pytest

from finch.sdg import load_pipeline
from finch.taxonomy import sample_taxonomy_dir
from tests.conftest import run_finch
from tests.sdg.helpers import generated_rows, journals, rows

pytestmark = pytest.mark.slow

LIMIT = 3  # samples per leaf: one expand call per leaf, a few minutes on 2 cores


@pytest.fixture(scope="module")
def generated(builtin_home, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("builtin-teacher") / "full"
    args = [
        "data",
        "generate",
        "--taxonomy",
        str(sample_taxonomy_dir()),
        "--pipeline",
        "full",
        "--scale",
        "1",
        "--limit-per-leaf",
        str(LIMIT),
        "--output",
        str(out),
    ]
    result = run_finch(*args, env=builtin_home["env"], timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    return {"out": out, "result": result, "report": report, "leaves": {leaf["kind"]: leaf for leaf in report["leaves"]}}


def test_full_pipeline_with_the_builtin_teacher_fills_every_leaf_counts_every_stage_and_holds_out_the_test(generated):
    out, result, report = generated["out"], generated["result"], generated["report"]
    pipeline = load_pipeline("full")
    assert report["complete"] and len(report["leaves"]) == 3
    for leaf in report["leaves"]:
        # per-stage counts: every block of the leaf's pipeline, then dedup, each one adding up
        blocks = pipeline.blocks(leaf["flavour"])
        assert [s["stage"] for s in leaf["stages"]] == [b.name for b in blocks] + ["dedup"]
        for stage in leaf["stages"]:
            assert stage["generated"] == stage["kept"] + sum(stage["rejected"].values()), stage
        first = leaf["stages"][0 if leaf["kind"] == "skill" else 1]  # one call: asked again if it read as nothing
        assert first["generated"] == LIMIT * (1 + first.get("retries", 0)), first
        assert leaf["train"] > leaf["seed_rows"], leaf  # rows of the teacher's, not only the seed examples
    train = rows(out / "train.jsonl")
    assert len(train) == report["train"]
    # the test set is the held-out seed examples (1 of 6, 1 of 7, 4 of 20), none of them trained on
    assert [leaf["test"] for leaf in report["leaves"]] == [1, 1, 4]
    test = {r["messages"][0]["content"] for r in rows(out / "test.jsonl")}
    assert not test & {r["messages"][0]["content"] for r in train}
    flavours = {leaf["leaf"]: leaf["flavour"] for leaf in report["leaves"]}
    assert sum(r["metadata"].get("source") == "seed" for r in train) == sum(
        leaf["seed_rows"] for leaf in report["leaves"]
    )
    for row in generated_rows(out / "train.jsonl"):
        judges = {b.name: b.threshold for b in pipeline.blocks(flavours[row["metadata"]["leaf"]]) if b.type == "judge"}
        scores = row["metadata"]["scores"]
        assert set(scores) == set(judges), row
        for name, score in scores.items():
            assert score is None or score >= judges[name], row  # a rated row passed its threshold
    # the judges read the teacher's probabilities: every judge journal starts with its rated anchors
    for name, records in journals(out).items():
        if "judge" in name and records:
            assert records[0].get("anchor") == "good" and records[0]["rating"] is not None, name
    assert "judge_responses" in result.stdout and f"train {report['train']} rows" in result.stdout


def test_the_builtin_teacher_writes_exam_questions_it_answers_itself(generated):
    mcq = rows(generated["out"] / "knowledge_mcq.jsonl")
    stage = next(s for s in generated["leaves"]["knowledge"]["stages"] if s["stage"] == "mcq")
    assert len(mcq) == stage["kept"] >= 1  # of LIMIT chunks asked, at least one confirmed
    for question in mcq:
        assert len(set(question["choices"])) == 4 and 0 <= question["answer"] <= 3 and question["context"]
