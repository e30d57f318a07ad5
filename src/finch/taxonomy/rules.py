"""Content rules beyond the schema: InstructLab's size limits, duplicates, empty text, placeholders, patterns.

They read the raw values (not the validated model) so that they still run when the schema check found problems
elsewhere in the file: one run shows everything that is wrong.
"""

from __future__ import annotations

import re
from typing import Any

from finch.taxonomy.lint import Parsed
from finch.taxonomy.problems import Reporter
from finch.taxonomy.schema import field_label

# Limits from InstructLab's contribution docs: seed examples go into the teacher model's prompt during synthetic
# data generation, so they must fit in it.
SKILL_MAX_WORDS = 2300  # question + answer + context of all seed examples of a skill leaf
CONTEXT_MAX_WORDS = 500  # each knowledge context
QNA_MAX_WORDS = 250  # each knowledge question + its answer

TODO_PREFIX = "TODO"
_COMMIT = re.compile(r"^[0-9a-fA-F]{7,40}$")
_SPACE = re.compile(r"\s+")


def words(text: str) -> int:
    return len(text.split())


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


def _strings(value: Any, path: tuple = ()):
    """Every string in the data with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))


def _examples(data: dict) -> list[tuple[int, dict]]:
    seeds = data.get("seed_examples")
    if not isinstance(seeds, list):
        return []
    return [(i, e) for i, e in enumerate(seeds) if isinstance(e, dict)]


def _text(d: dict, key: str) -> str | None:
    value = d.get(key)
    return value if isinstance(value, str) else None


def check_text(data: dict, parsed: Parsed, rep: Reporter) -> None:
    """Empty strings and scaffold placeholders, anywhere in the file."""
    for path, text in _strings(data):
        stripped = text.strip()
        if not stripped:
            rep.error("empty", f"'{field_label(path)}' is empty", parsed.pos(path))
        elif stripped.startswith(TODO_PREFIX):
            first = stripped.splitlines()[0]
            rep.error("todo", f"'{field_label(path)}' is still a placeholder: {first}", parsed.pos(path))


def check_knowledge(data: dict, parsed: Parsed, rep: Reporter) -> None:
    questions: dict[str, int] = {}
    contexts: dict[str, int] = {}
    for i, example in _examples(data):
        context = _text(example, "context")
        if context is not None:
            n = words(context)
            if n > CONTEXT_MAX_WORDS:
                rep.error(
                    "context-words",
                    f"'seed_examples[{i}].context' has {n} words; the limit is {CONTEXT_MAX_WORDS} "
                    "(it must fit in the teacher's prompt with the questions): shorten it",
                    parsed.pos(("seed_examples", i, "context")),
                )
            key = _norm(context)
            if key and key in contexts:
                rep.error(
                    "duplicate-context",
                    f"'seed_examples[{i}].context' repeats seed_examples[{contexts[key]}].context; "
                    "each seed example needs its own passage",
                    parsed.pos(("seed_examples", i, "context")),
                )
            contexts.setdefault(key, i)
        pairs = example.get("questions_and_answers")
        if not isinstance(pairs, list):
            continue
        for j, pair in enumerate(pairs):
            if not isinstance(pair, dict):
                continue
            path = ("seed_examples", i, "questions_and_answers", j)
            question, answer = _text(pair, "question"), _text(pair, "answer")
            n = words(question or "") + words(answer or "")
            if n > QNA_MAX_WORDS:
                rep.error(
                    "qna-words",
                    f"'{field_label(path)}' has {n} words in question + answer; the limit is {QNA_MAX_WORDS}: "
                    "shorten the answer",
                    parsed.pos(path),
                )
            if question is not None and question.strip():
                key = _norm(question)
                if key in questions:
                    rep.error(
                        "duplicate-question",
                        f"duplicate question (also at line {questions[key]}): {question.strip()[:60]!r}; "
                        "the same question with two answers teaches neither",
                        parsed.pos((*path, "question")),
                    )
                else:
                    questions[key] = parsed.pos((*path, "question"))[0]
    document = data.get("document")
    if isinstance(document, dict):
        check_document_spec(document, parsed, rep)


def check_skill(data: dict, parsed: Parsed, rep: Reporter) -> None:
    total = 0
    seen: dict[tuple[str, str], int] = {}
    with_context = 0
    examples = _examples(data)
    for i, example in examples:
        question, answer, context = _text(example, "question"), _text(example, "answer"), _text(example, "context")
        total += words(question or "") + words(answer or "") + words(context or "")
        if "context" in example:
            with_context += 1
        if question is not None and question.strip():
            key = (_norm(question), _norm(context or ""))
            pos = parsed.pos(("seed_examples", i, "question"))
            if key in seen:
                same = " with the same context" if context else ""
                rep.error(
                    "duplicate-question",
                    f"duplicate question{same} (also at line {seen[key]}): {question.strip()[:60]!r}",
                    pos,
                )
            else:
                seen[key] = pos[0]
    if total > SKILL_MAX_WORDS:
        rep.error(
            "skill-words",
            f"the seed examples hold {total:,} words (question + answer + context); the limit is "
            f"{SKILL_MAX_WORDS:,} because they must fit in the teacher's prompt: shorten or remove some",
            parsed.key_pos(("seed_examples",)),
        )
    if 0 < with_context < len(examples):
        rep.warning(
            "grounded-mix",
            f"{with_context} of {len(examples)} seed examples have a context: a skill is either grounded (every "
            "example has a context) or freeform (none has); split it into two leaves",
            parsed.key_pos(("seed_examples",)),
        )


def pattern_problem(pattern: str) -> str | None:
    """Why a document pattern may not be used, or None. Patterns are globs confined to the document folder."""
    if not pattern.strip():
        return None  # reported as empty
    if pattern.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", pattern):
        return f"pattern {pattern!r} is an absolute path; patterns are relative to the repository or leaf folder"
    if ".." in re.split(r"[/\\]", pattern):
        return f"pattern {pattern!r} contains '..'; patterns may not leave the repository or leaf folder"
    return None


def check_document_spec(document: dict, parsed: Parsed, rep: Reporter) -> None:
    base = ("document",)
    repo, commit, folder = document.get("repo"), document.get("commit"), document.get("folder")
    if repo is not None and commit is None:
        rep.error(
            "document-commit",
            "'document' names a repo but no commit: add `commit:` with the full commit SHA holding the documents",
            parsed.key_pos((*base, "repo")),
        )
    if commit is not None and repo is None:
        rep.error(
            "document-repo",
            "'document' names a commit but no repo: add `repo:` (a git URL), or remove `commit` to use files "
            "beside the qna.yaml",
            parsed.key_pos((*base, "commit")),
        )
    if isinstance(commit, str) and commit.strip() and not _COMMIT.match(commit.strip()):
        rep.error(
            "document-commit",
            f"'document.commit' must be a commit SHA (7 to 40 hex digits), found {commit!r}: branch and tag names "
            "move, and the documents must not change under the seed examples",
            parsed.pos((*base, "commit")),
        )
    if isinstance(repo, str) and (repo.strip().startswith("-") or repo.strip().lower().startswith("ext::")):
        rep.error(
            "document-repo",
            f"'document.repo' must be a git URL or path, found {repo!r} (it would be read as a git option or a "
            "command to run)",
            parsed.pos((*base, "repo")),
        )
    if repo is not None and folder is not None:
        rep.error(
            "document-folder",
            "'document' has both repo and folder; use one: repo + commit, or folder",
            parsed.key_pos((*base, "folder")),
        )
    patterns = document.get("patterns")
    if isinstance(patterns, list):
        seen: set[str] = set()
        for k, pattern in enumerate(patterns):
            if not isinstance(pattern, str):
                continue
            problem = pattern_problem(pattern)
            if problem:
                rep.error("document-pattern", problem, parsed.pos((*base, "patterns", k)))
            if pattern in seen:
                rep.error(
                    "document-pattern", f"pattern {pattern!r} is listed twice", parsed.pos((*base, "patterns", k))
                )
            seen.add(pattern)
