"""`finch taxonomy diff` against real git repositories made in temp dirs."""

from __future__ import annotations

import pytest
from tax_helpers import commit_all, git, init_repo, run_finch

from finch.errors import FinchError, UsageError
from finch.taxonomy import diff_leaves, sample_taxonomy_dir

SKILL = (sample_taxonomy_dir() / "compositional_skills/formatting/iso_dates/qna.yaml").read_text()


def leaf(root, path, text=SKILL):
    folder = root / path
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qna.yaml").write_text(text)
    return folder


def names(result):
    return [leaf.name for leaf in result.leaves]


@pytest.fixture
def repo(tmp_path):
    repo = init_repo(tmp_path / "taxonomy")
    leaf(repo, "compositional_skills/a/one")
    leaf(repo, "compositional_skills/a/two")
    leaf(repo, "knowledge/k/three")
    commit_all(repo, "base")
    return repo


def test_branch_changes_committed_staged_unstaged_and_untracked(repo):
    git(repo, "checkout", "--quiet", "-b", "work")
    leaf(repo, "compositional_skills/a/one", SKILL + "# committed change\n")
    leaf(repo, "compositional_skills/b/added")
    commit_all(repo, "work")
    leaf(repo, "compositional_skills/a/two", SKILL + "# unstaged change\n")
    (repo / "knowledge/k/three/notes.md").write_text("a new document beside the leaf\n")  # untracked, in a leaf
    leaf(repo, "compositional_skills/c/new_untracked")
    result = diff_leaves(repo, "main")
    assert names(result) == [
        "compositional_skills->a->one",
        "compositional_skills->a->two",
        "compositional_skills->b->added",
        "compositional_skills->c->new_untracked",
        "knowledge->k->three",
    ]
    untracked = [leaf.name for leaf in result.leaves if result.is_untracked(leaf)]
    assert untracked == ["compositional_skills->c->new_untracked", "knowledge->k->three"]


def test_changes_on_main_after_branching_do_not_count(repo):
    git(repo, "checkout", "--quiet", "-b", "work")
    leaf(repo, "compositional_skills/a/mine")
    commit_all(repo, "mine")
    git(repo, "checkout", "--quiet", "main")
    leaf(repo, "compositional_skills/a/theirs")
    commit_all(repo, "theirs")
    git(repo, "checkout", "--quiet", "work")
    assert names(diff_leaves(repo, "main")) == ["compositional_skills->a->mine"]  # merge-base, not main's tip


def test_deleted_and_ignored_files_do_not_count_and_nothing_found_says_why(repo):
    (repo / ".gitignore").write_text("ignored/\n")
    commit_all(repo, "ignore")
    git(repo, "checkout", "--quiet", "-b", "work")
    git(repo, "rm", "--quiet", "-r", "compositional_skills/a/two")
    leaf(repo, "compositional_skills/ignored/x")
    commit_all(repo, "delete")
    result = diff_leaves(repo, "main")
    assert result.leaves == []
    message = result.explain_nothing()
    assert "no leaf added or changed against main" in message
    assert "all 3 leaves" in message and ".gitignore" in message and "--base empty" in message


def test_nothing_found_on_the_base_branch_itself(repo):
    result = diff_leaves(repo, "main")
    assert result.leaves == [] and result.head_is_base
    assert "HEAD is the merge-base itself" in result.explain_nothing()


def test_changes_outside_leaves_are_named(repo):
    (repo / "compositional_skills/README.md").write_text("about\n")
    message = diff_leaves(repo, "main").explain_nothing()
    assert "none inside a leaf folder" in message and "compositional_skills/README.md" in message


def test_base_empty_lists_every_leaf_without_git(tmp_path):
    leaf(tmp_path, "compositional_skills/x/y")
    leaf(tmp_path, "knowledge/z")
    assert names(diff_leaves(tmp_path, "empty")) == ["compositional_skills->x->y", "knowledge->z"]
    with pytest.raises(FinchError, match="not in a git repository"):
        diff_leaves(tmp_path, None)


def test_default_base_and_unknown_refs(repo, tmp_path):
    leaf(repo, "compositional_skills/a/fresh")
    assert names(diff_leaves(repo)) == ["compositional_skills->a->fresh"]  # main, as there is no origin/main
    with pytest.raises(UsageError, match="unknown git ref 'nope'.*main"):
        diff_leaves(repo, "nope")
    other = init_repo(tmp_path / "other")
    git(other, "checkout", "--quiet", "-b", "trunk")
    leaf(other, "knowledge/a")
    commit_all(other)
    with pytest.raises(UsageError, match="no base to compare with"):
        diff_leaves(other)


def test_taxonomy_in_a_subfolder_of_the_repository(tmp_path):
    repo = init_repo(tmp_path / "project")
    tax = repo / "data/taxonomy"
    leaf(tax, "knowledge/old")
    (repo / "README.md").write_text("x\n")
    commit_all(repo)
    git(repo, "checkout", "--quiet", "-b", "work")
    leaf(tax, "knowledge/new")
    (repo / "README.md").write_text("changed outside the taxonomy\n")
    result = diff_leaves(tax, "main")
    assert names(result) == ["knowledge->new"] and result.outside_leaves == []


def test_cli_diff(repo, tmp_path):
    home = tmp_path / "home"
    result = run_finch(["taxonomy", "diff", str(repo), "--base", "main"], home)
    assert result.returncode == 0 and result.stdout == ""
    assert "no leaf added or changed against main" in result.stderr
    leaf(repo, "compositional_skills/z/new")
    result = run_finch(["taxonomy", "diff", str(repo), "--base", "main"], home, cwd=repo)
    assert result.returncode == 0
    assert result.stdout.split() == [
        "compositional_skills->z->new",
        "compositional_skills/z/new/qna.yaml",
        "(untracked)",
    ]
    result = run_finch(["taxonomy", "diff", str(repo), "--base", "nope"], home)
    assert result.returncode == 2 and result.stderr.startswith("finch: error: unknown git ref 'nope'")
