"""`finch data generate|list|show` as a user runs them, against the scripted teacher over real HTTP."""

from __future__ import annotations

import json
import shutil

import pytest

from finch.taxonomy import sample_taxonomy_dir
from tests.conftest import assert_one_line_error, run_finch
from tests.sdg.helpers import rows


def test_generate_list_show(finch_home, teacher, tiny_gemma3_dir, tmp_path):
    assert run_finch("init").returncode == 0
    out = tmp_path / "ds"
    args = ["--teacher", teacher.url, "--pipeline", "full", "--scale", "1", "--student", str(tiny_gemma3_dir)]
    result = run_finch("data", "generate", *args, "--output", str(out), "--chunk-tokens", "200")
    assert result.returncode == 0, result.stderr
    assert "judge_faithfulness" in result.stdout and "low_rating" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert f"train {report['train']} rows" in result.stdout
    assert len(rows(out / "train.jsonl")) == report["train"] > 0
    # chunks were sized in the student's tokens: 200-token chunks make more calls than the default 400
    mcq_stage = next(s for leaf in report["leaves"] for s in leaf["stages"] if s["stage"] == "mcq")
    assert mcq_stage["generated"] >= 10

    rerun = run_finch("data", "generate", *args, "--output", str(out), "--chunk-tokens", "200")
    assert rerun.returncode == 0 and (out / "report.json").read_text() != ""
    assert_one_line_error(
        run_finch("data", "generate", *args, "--output", str(out)), 2, "holds a run with other settings", "400"
    )

    default = run_finch(
        "data",
        "generate",
        *args[:6],
        "--student",
        str(tiny_gemma3_dir),
        "--leaves",
        str(finch_home / "taxonomy" / "compositional_skills"),
    )
    assert default.returncode == 0, default.stderr
    listed = json.loads(run_finch("data", "list", "--json").stdout)
    assert [d["train"] > 0 for d in listed] == [True]  # the default output lands in the workspace datasets folder
    assert listed[0]["name"].startswith("full-127.0.0.1") and listed[0]["leaves"] == 2

    shown = run_finch("data", "show", str(out), "--samples", "2")
    assert shown.returncode == 0, shown.stderr
    assert "teacher scripted-teacher" in shown.stdout and shown.stdout.count("assistant:") == 2


@pytest.mark.parametrize(
    ("argv", "code", "fragment"),
    [
        (["data", "generate", "--replay-ratio", "0.5"], 2, "--replay-ratio: needs replay"),
        (["data", "generate", "--leaves", "no/such/leaf"], 2, "no such file or folder: no/such/leaf"),
        (["data", "generate", "--pipeline", "fancy"], 2, "--pipeline fancy: choose simple or full"),
        (["data", "show", "nothing-here"], 2, "no dataset 'nothing-here'"),
    ],
)
def test_usage_errors_are_one_line(finch_home, argv, code, fragment):
    run_finch("init")
    assert_one_line_error(run_finch(*argv), code, fragment)


def test_leaves_changed_generates_only_the_leaf_changed_on_the_branch(finch_home, teacher, tiny_gemma3_dir, tmp_path):
    from tests.taxonomy.tax_helpers import commit_all, git, init_repo

    repo = init_repo(tmp_path / "repo")
    shutil.copytree(sample_taxonomy_dir(), repo / "taxonomy")
    commit_all(repo, "the sample taxonomy")
    args = [
        "data",
        "generate",
        "--taxonomy",
        str(repo / "taxonomy"),
        "--leaves",
        "changed",
        "--teacher",
        teacher.url,
        "--pipeline",
        "simple",
        "--scale",
        "1",
        "--student",
        str(tiny_gemma3_dir),
    ]
    assert_one_line_error(run_finch(*args, "--output", str(tmp_path / "none")), 2, "--leaves: changed: no leaf")

    git(repo, "checkout", "--quiet", "-b", "more-dates")
    qna = repo / "taxonomy" / "compositional_skills" / "formatting" / "iso_dates" / "qna.yaml"
    qna.write_text(qna.read_text().replace("March 5th, 2021", "March 6th, 2021").replace("2021-03-05", "2021-03-06"))
    commit_all(repo, "a better date")
    result = run_finch(*args, "--output", str(tmp_path / "ds"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "ds" / "report.json").read_text())
    assert [leaf["leaf"] for leaf in report["leaves"]] == ["compositional_skills->formatting->iso_dates"]
    train = rows(tmp_path / "ds" / "train.jsonl")
    assert train and {r["metadata"]["leaf"] for r in train} == {"compositional_skills->formatting->iso_dates"}
    # the changed example is shown to the teacher; the leaf's test set is its held-out example, which is not
    test = rows(tmp_path / "ds" / "test.jsonl")
    held_out = "Give the ISO 8601 form of 25/12/2030, written the European way (day first)."
    assert [r["messages"][0]["content"] for r in test] == [held_out]
    prompts = [m["content"] for body in teacher.requests for m in body["messages"]]
    assert any("Write March 6th, 2021 as an ISO 8601 date." in p for p in prompts)
    assert not any(held_out in p for p in prompts)
    assert sorted(p.name for p in (tmp_path / "ds" / "leaves").iterdir()) == [
        "compositional_skills.formatting.iso_dates.test.jsonl",
        "compositional_skills.formatting.iso_dates.train.jsonl",
    ]
