"""`finch taxonomy new`: scaffolds fail check only on their TODOs, and never overwrite."""

from __future__ import annotations

import pytest
from tax_helpers import run_finch

from finch.errors import UsageError
from finch.taxonomy import check_taxonomy, new_leaf


@pytest.mark.parametrize(
    "kind, path", [("knowledge", "knowledge/history/dunmere"), ("skill", "compositional_skills/w/x")]
)
def test_scaffold_fails_only_on_todos(kind, path, tmp_path):
    written = new_leaf(kind, tmp_path / path, tmp_path, author="someone")
    assert written[0] == tmp_path / path / "qna.yaml"
    report = check_taxonomy([tmp_path], documents_cache=tmp_path / "cache")
    [leaf] = report.leaves
    assert leaf.errors, "a scaffold must not pass as it is"
    assert {p.rule for p in leaf.problems} == {"todo"}, report.lines()
    assert leaf.kind == kind


def test_filled_in_scaffold_passes(tmp_path):
    new_leaf("skill", tmp_path / "compositional_skills/a/b", tmp_path, author="someone")
    qna = tmp_path / "compositional_skills/a/b/qna.yaml"
    qna.write_text(qna.read_text().replace("TODO: ", "Filled "))
    assert check_taxonomy([tmp_path], skip_documents=True).ok


def test_scaffold_refuses_wrong_place_and_overwrite(tmp_path):
    with pytest.raises(UsageError, match="goes under knowledge/"):
        new_leaf("knowledge", tmp_path / "compositional_skills/x", tmp_path)
    with pytest.raises(UsageError, match="top folder itself"):
        new_leaf("skill", tmp_path / "compositional_skills", tmp_path)
    with pytest.raises(UsageError, match="unknown leaf kind"):
        new_leaf("recipe", tmp_path / "knowledge/x", tmp_path)
    new_leaf("skill", tmp_path / "compositional_skills/x", tmp_path)
    qna = tmp_path / "compositional_skills/x/qna.yaml"
    qna.write_text("mine\n")
    with pytest.raises(UsageError, match="already exists"):
        new_leaf("skill", tmp_path / "compositional_skills/x", tmp_path)
    assert qna.read_text() == "mine\n"


def test_cli_new_is_relative_to_the_workspace_taxonomy(tmp_path):
    home = tmp_path / "home"
    result = run_finch(["taxonomy", "new", "skill", "compositional_skills/writing/limerick"], home)
    assert result.returncode == 0, result.stderr
    assert (home / "taxonomy/compositional_skills/writing/limerick/qna.yaml").is_file()
    result = run_finch(["taxonomy", "new", "skill", "knowledge/oops"], home)
    assert result.returncode == 2 and "finch: error: a skill leaf goes under" in result.stderr
    assert "Traceback" not in result.stderr
