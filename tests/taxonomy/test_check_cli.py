"""`finch taxonomy check` and `tree` end to end, `finch init` copying the sample, and a 1,200-leaf tree."""

from __future__ import annotations

import json
import shutil

from tax_helpers import run_finch

from finch.taxonomy import check_taxonomy, sample_taxonomy_dir


def test_init_copies_the_sample_and_check_defaults_to_the_workspace(tmp_path):
    home = tmp_path / "home"
    result = run_finch(["init", "-y"], home)
    assert result.returncode == 0, result.stderr
    assert (home / "taxonomy/knowledge/products/kestrel_vane_k230/kestrel_vane_k230.md").is_file()
    result = run_finch(["taxonomy", "check"], home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "" and "checked 3 leaves: all valid" in result.stderr


def test_init_never_overwrites_a_users_taxonomy(tmp_path):
    home = tmp_path / "home"
    mine = home / "taxonomy/compositional_skills/mine/qna.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text("my own\n")
    assert run_finch(["init", "-y"], home).returncode == 0
    assert mine.read_text() == "my own\n"
    assert not (home / "taxonomy/knowledge").exists()


def test_check_json_for_a_valid_tree(tmp_path):
    result = run_finch(["taxonomy", "check", str(sample_taxonomy_dir()), "--format", "json"], tmp_path / "home")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert [sorted(entry) for entry in data["leaves"]] == [["errors", "path", "valid", "warnings"]] * 3
    assert all(entry["valid"] and entry["errors"] == [] for entry in data["leaves"])


def test_check_any_depth_and_missing_paths(tmp_path):
    deep = sample_taxonomy_dir() / "compositional_skills/formatting"
    report = check_taxonomy([deep], skip_documents=True)
    assert [leaf.name for leaf in report.leaves] == ["compositional_skills->formatting->iso_dates"]
    result = run_finch(["taxonomy", "check", str(tmp_path / "nowhere")], tmp_path / "home")
    assert result.returncode == 2 and "no such file or folder" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "empty").mkdir()
    result = run_finch(["taxonomy", "check", str(tmp_path / "empty")], tmp_path / "home")
    assert result.returncode == 1 and "no qna.yaml found under" in result.stderr


def test_a_leaf_under_a_hidden_folder_is_checked_and_a_git_store_is_not_searched(tmp_path):
    hidden = tmp_path / "knowledge/Users/ada/.local/share/instructlab/taxonomy/knowledge/films/history"
    shutil.copytree(sample_taxonomy_dir() / "compositional_skills/formatting/iso_dates", hidden)
    (tmp_path / ".git" / "knowledge" / "x").mkdir(parents=True)
    shutil.copy(hidden / "qna.yaml", tmp_path / ".git/knowledge/x/qna.yaml")
    [leaf] = check_taxonomy([tmp_path], skip_documents=True).leaves
    assert leaf.path == hidden / "qna.yaml" and leaf.name.endswith(
        ".local->share->instructlab->taxonomy->knowledge->films->history"
    )
    result = run_finch(["taxonomy", "check", str(hidden.parents[5])], tmp_path / "home")  # asked for .local itself
    assert "checked 1 leaf" in result.stdout + result.stderr, result.stdout + result.stderr


def test_all_problems_of_all_files_in_one_run(tmp_path):
    for name in ("a", "b"):
        folder = tmp_path / "compositional_skills" / name
        folder.mkdir(parents=True)
        (folder / "qna.yaml").write_text("version: 3\ncreated_by: ''\nextra: 1\nseed_examples: []\n")
    report = check_taxonomy([tmp_path], skip_documents=True)
    for leaf in report.leaves:
        assert sorted(p.line for p in leaf.errors) == [1, 2, 3, 4]  # missing task_description, empty, unknown, few


def test_tree_shows_counts(tmp_path):
    result = run_finch(["taxonomy", "tree", str(sample_taxonomy_dir())], tmp_path / "home")
    assert result.returncode == 0
    assert "kestrel_vane_k230 (knowledge: 5 contexts, 20 Q&A)" in result.stdout
    assert "iso_dates (skill, freeform: 7 examples)" in result.stdout
    assert "order_details (skill, grounded: 6 examples)" in result.stdout


def test_a_tree_of_1200_leaves_checks(tmp_path):
    """Scale: the issue's target is < 10 s with --skip-documents (measured by hand, see docs/taxonomy.md)."""
    sample = sample_taxonomy_dir()
    sources = sorted(sample.rglob("qna.yaml"))
    for i in range(1200):
        src = sources[i % len(sources)]
        top = src.relative_to(sample).parts[0]
        folder = tmp_path / "tax" / top / f"area_{i % 20}" / f"leaf_{i}"
        folder.mkdir(parents=True)
        shutil.copyfile(src, folder / "qna.yaml")
    report = check_taxonomy([tmp_path / "tax"], skip_documents=True)
    assert len(report.leaves) == 1200 and report.ok
