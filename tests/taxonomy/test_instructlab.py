"""Leaves written for InstructLab load unchanged, including documents from a git repo at a commit."""

from __future__ import annotations

import os
import shutil

from tax_helpers import INSTRUCTLAB, commit_all, init_repo

from finch.taxonomy import Knowledge, Skill, check_taxonomy, load_documents
from finch.taxonomy.documents import DocumentSource


def test_instructlab_leaves_load_unchanged():
    report = check_taxonomy([INSTRUCTLAB], skip_documents=True)
    problems = [p.format(leaf.path) for leaf in report.leaves for p in leaf.problems]
    assert problems == []
    kinds = {leaf.name: type(leaf.leaf) for leaf in report.leaves}
    assert kinds == {
        "compositional_skills->freeform_v2": Skill,
        "compositional_skills->grounded_v3": Skill,
        "knowledge->science->phoenix_v3": Knowledge,
    }
    knowledge = next(leaf.leaf for leaf in report.leaves if isinstance(leaf.leaf, Knowledge))
    assert knowledge.document.repo == "https://github.com/juliadenham/Summit_knowledge"
    assert knowledge.document.patterns == ["phoenix_constellation.md"]
    assert knowledge.seed_examples[0].questions_and_answers[0].question == "What is the Phoenix constellation?\n"


def _knowledge_leaf(taxonomy, repo, commit, patterns):
    src = INSTRUCTLAB / "knowledge/science/phoenix_v3/qna.yaml"
    text = src.read_text().replace("https://github.com/juliadenham/Summit_knowledge", str(repo))
    text = text.replace("0406e3ec8d5a5e4a29b20a1d22a8316ddcac6fd9", commit)
    text = text.replace("    - phoenix_constellation.md\n", "".join(f"    - {p!r}\n" for p in patterns))
    leaf = taxonomy / "knowledge/science/phoenix"
    leaf.mkdir(parents=True)
    (leaf / "qna.yaml").write_text(text)
    return leaf


def test_git_documents_are_fetched_once_at_the_commit(tmp_path):
    repo = init_repo(tmp_path / "docs")
    (repo / "phoenix.md").write_text("# Phoenix\nA minor constellation in the southern sky.\n")
    (repo / "notes").mkdir()
    (repo / "notes/extra.txt").write_text("Ankaa is an orange giant.\n")
    first = commit_all(repo)
    (repo / "phoenix.md").write_text("# Changed later\n")
    commit_all(repo)
    leaf = _knowledge_leaf(tmp_path / "tax", repo, first, ["*.md", "notes/*.txt"])
    cache = tmp_path / "cache"
    report = check_taxonomy([tmp_path / "tax"], documents_cache=cache)
    assert report.ok, report.lines()
    docs = sorted(report.leaves[0].documents, key=lambda d: d.path.name)
    assert [d.path.name for d in docs] == ["extra.txt", "phoenix.md"]
    assert "southern sky" in docs[1].text  # the commit named, not the branch tip
    # Cached: the source repository can go away and the check still passes, offline.
    shutil.rmtree(repo)
    again = check_taxonomy([tmp_path / "tax"], documents_cache=cache)
    assert again.ok, again.lines()
    assert load_documents(leaf, again.leaves[0].leaf.document, DocumentSource(cache))[0].text == docs[1].text


def test_unreachable_repo_is_one_clear_error_and_skippable(tmp_path):
    leaf = _knowledge_leaf(
        tmp_path / "tax", tmp_path / "no-such-repo", "0406e3ec8d5a5e4a29b20a1d22a8316ddcac6fd9", ["a.md"]
    )
    repo_line = (leaf / "qna.yaml").read_text().splitlines().index(f"  repo: {tmp_path / 'no-such-repo'}") + 1
    report = check_taxonomy([tmp_path / "tax"], documents_cache=tmp_path / "cache")
    [error] = report.leaves[0].errors
    assert "cannot fetch" in error.message and "--skip-documents" in error.message
    assert error.line == repo_line
    assert check_taxonomy([tmp_path / "tax"], skip_documents=True).ok


def test_missing_commit_and_symlink_escape(tmp_path):
    repo = init_repo(tmp_path / "docs")
    (repo / "doc.md").write_text("text\n")
    outside = tmp_path / "secret.md"
    outside.write_text("secret\n")
    os.symlink(outside, repo / "leak.md")
    sha = commit_all(repo)
    _knowledge_leaf(tmp_path / "tax", repo, sha, ["*.md"])
    report = check_taxonomy([tmp_path / "tax"], documents_cache=tmp_path / "cache")
    messages = [p.message for p in report.leaves[0].errors]
    # git stores the symlink as a link; once checked out it points outside the repository
    assert any("leak.md is a symlink" in m and "outside" in m for m in messages), messages
    shutil.rmtree(tmp_path / "tax")
    _knowledge_leaf(tmp_path / "tax", repo, "1234567890abcdef1234567890abcdef12345678", ["*.md"])
    report = check_taxonomy([tmp_path / "tax"], documents_cache=tmp_path / "cache")
    assert any("is not in" in p.message for p in report.leaves[0].errors), report.lines()


def test_local_symlink_out_of_the_leaf_is_refused(tmp_path):
    leaf = tmp_path / "tax/knowledge/a/b"
    leaf.mkdir(parents=True)
    text = (INSTRUCTLAB / "knowledge/science/phoenix_v3/qna.yaml").read_text()
    text = text[: text.index("document:")] + "document:\n  patterns:\n    - '*.md'\n"
    (leaf / "qna.yaml").write_text(text)
    (tmp_path / "outside.md").write_text("outside\n")
    os.symlink(tmp_path / "outside.md", leaf / "inside.md")
    report = check_taxonomy([tmp_path / "tax"], documents_cache=tmp_path / "cache")
    assert any("symlink" in p.message for p in report.leaves[0].errors), report.lines()
