"""The malformed corpus: each file gets the right problem, at the line where the defect was written, no traceback."""

from __future__ import annotations

import json

import pytest
import yaml
from tax_helpers import MALFORMED, run_finch

from finch.errors import FinchError
from finch.taxonomy import check_taxonomy
from finch.taxonomy.documents import DocumentSource

CASES = yaml.safe_load((MALFORMED / "manifest.yaml").read_text())["cases"]


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 25
    assert len({c["path"] for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    cache = tmp_path_factory.mktemp("documents")
    return {
        str(leaf.path.relative_to(MALFORMED)): leaf
        for leaf in check_taxonomy([MALFORMED], documents_cache=cache).leaves
    }


@pytest.mark.parametrize("case", CASES, ids=[c["path"].split("/")[1] for c in CASES])
def test_malformed_file_gets_its_problem(case, report):
    leaf = report[case["path"]]
    found = [p for p in leaf.problems if p.severity == case["severity"] and case["message"] in p.message]
    assert found, [p.format(case["path"]) for p in leaf.problems]
    if case["line"] is not None:
        assert found[0].line == case["line"], found[0].format(case["path"])
    assert found[0].col >= (1 if case["line"] else 0)
    if case["severity"] == "error":
        assert not leaf.valid
    else:
        assert leaf.valid, [p.format(case["path"]) for p in leaf.errors]


def test_every_leaf_in_the_corpus_is_in_the_manifest(report):
    assert sorted(report) == sorted(c["path"] for c in CASES)


def test_cli_json_reports_the_whole_corpus_without_traceback(tmp_path):
    result = run_finch(["taxonomy", "check", ".", "--format", "json"], tmp_path / "home", cwd=MALFORMED)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    data = json.loads(result.stdout)
    assert set(data) == {"leaves"}
    by_path = {entry["path"]: entry for entry in data["leaves"]}
    assert len(by_path) == len(CASES)
    for case in CASES:
        entry = by_path[case["path"]]
        assert set(entry) == {"path", "valid", "errors", "warnings"}
        assert entry["valid"] is (case["severity"] == "warning")
        bucket = entry["errors" if case["severity"] == "error" else "warnings"]
        assert all(set(item) == {"line", "col", "message"} for item in bucket)
        assert any(case["message"] in item["message"] and item["line"] == case["line"] for item in bucket), entry


@pytest.mark.parametrize(
    "name, expected",
    [
        ("compositional_skills/duplicate_key", ":11:5: error: duplicate key 'answer' (first at line 10)"),
        ("compositional_skills/tab_indent", ":8:1: error: tab character in the indentation"),
        ("compositional_skills/not_utf8", ":12:21: error: not UTF-8 text"),
        ("knowledge/pattern_dotdot", ":48:7: error: pattern '../../secret.md' contains '..'"),
    ],
)
def test_cli_text_lines_are_path_line_col(name, expected, tmp_path):
    result = run_finch(["taxonomy", "check", name], tmp_path / "home", cwd=MALFORMED)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{name}/qna.yaml{expected}" in result.stdout, result.stdout
    assert "1 invalid" in result.stderr


def test_tags_are_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    leaf = tmp_path / "compositional_skills/evil"
    leaf.mkdir(parents=True)
    (leaf / "qna.yaml").write_text(
        f"version: 3\ncreated_by: x\ntask_description: !!python/object/apply:os.system ['touch {marker}']\n"
        f"seed_examples: !!python/object/new:subprocess.check_output [['touch', '{marker}']]\n"
    )
    report = check_taxonomy([tmp_path], skip_documents=True)
    assert not marker.exists()
    assert sum("is not allowed" in p.message for p in report.leaves[0].errors) == 2


def test_a_repo_that_is_a_git_option_is_never_run(tmp_path):
    marker = tmp_path / "pwned"
    source = DocumentSource(tmp_path / "cache")
    with pytest.raises(FinchError, match="refusing"):
        source.checkout(f"--upload-pack=touch {marker}", "0406e3ec8d5a5e4a29b20a1d22a8316ddcac6fd9")
    with pytest.raises(FinchError, match="refusing"):
        source.checkout(str(tmp_path), "main; touch pwned")
    assert not marker.exists()
