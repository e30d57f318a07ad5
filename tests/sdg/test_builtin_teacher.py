"""`finch data generate --pipeline full` with the built-in teacher (Gemma 3 270M base, llama.cpp) on the sample
taxonomy: every leaf gets training data, judged by the teacher's probabilities over the rating digits."""

from __future__ import annotations

import json

import pytest

from finch.sdg import load_pipeline
from finch.taxonomy import sample_taxonomy_dir
from tests.conftest import run_finch
from tests.sdg.helpers import journals, rows

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skip(
        reason="issue 5 open: the knowledge leaf keeps 0 rows with the built-in teacher (it copies its in-context seed "
        "examples, which are the test set) and the run takes over 20 min on 2 cores"
    ),
]


def test_full_pipeline_with_the_builtin_teacher_fills_every_leaf(builtin_home, tmp_path):
    out = tmp_path / "full"
    args = ["data", "generate", "--taxonomy", str(sample_taxonomy_dir()), "--pipeline", "full", "--scale", "1",
            "--limit-per-leaf", "6", "--output", str(out)]  # fmt: skip
    result = run_finch(*args, env=builtin_home["env"], timeout=2400)  # > 20 min on 2 cores shared at load ~9
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    pipeline = load_pipeline("full")
    assert report["complete"] and len(report["leaves"]) == 3
    for leaf in report["leaves"]:
        assert leaf["train"] > 0 and leaf["test"] > 0, leaf
        # per-stage counts: every block of the leaf's pipeline, then dedup, each one adding up
        blocks = pipeline.blocks(leaf["flavour"])
        assert [s["stage"] for s in leaf["stages"]] == [b.name for b in blocks] + ["dedup"]
        for stage in leaf["stages"]:
            assert stage["generated"] == stage["kept"] + sum(stage["rejected"].values()), stage
        assert leaf["stages"][0 if leaf["kind"] == "skill" else 1]["generated"] == 6
    train = rows(out / "train.jsonl")
    assert len(train) == report["train"]
    flavours = {leaf["leaf"]: leaf["flavour"] for leaf in report["leaves"]}
    for row in train:
        judges = {b.name: b.threshold for b in pipeline.blocks(flavours[row["metadata"]["leaf"]]) if b.type == "judge"}
        scores = row["metadata"]["scores"]
        assert set(scores) == set(judges), row
        for name, score in scores.items():
            assert score is None or score >= judges[name], row  # a rated row passed its threshold
    # the judges read the teacher's probabilities: every judge journal starts with its rated anchors
    for name, records in journals(out).items():
        if "judge" in name:
            assert records[0].get("anchor") == "good" and records[0]["rating"] is not None, name
    assert "judge_responses" in result.stdout and f"train {report['train']} rows" in result.stdout
