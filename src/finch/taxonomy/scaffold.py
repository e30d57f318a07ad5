"""`finch taxonomy new knowledge|skill PATH`: a leaf whose only problems are its TODO placeholders."""

from __future__ import annotations

import getpass
import re
from pathlib import Path

from finch.errors import UsageError
from finch.fileio import atomic_write_text
from finch.taxonomy.rules import TODO_PREFIX
from finch.taxonomy.schema import MIN_QNA_PER_CONTEXT, MIN_SEED_EXAMPLES
from finch.taxonomy.tree import QNA_NAMES, TOP_FOLDERS

KINDS = ("knowledge", "skill")


def _author() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = ""
    return name if re.fullmatch(r"[A-Za-z0-9_.-]+", name or "") else f"{TODO_PREFIX}: your GitHub user name"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def knowledge_yaml(author: str, document_name: str) -> str:
    lines = [
        "# A knowledge leaf: facts the model should learn from the document beside this file.",
        "# Replace every TODO, then run `finch taxonomy check`. Rules: docs/taxonomy.md. Limits: each context",
        "# <= 500 words (a passage copied from the document); each question + answer <= 250 words;",
        f"# at least {MIN_SEED_EXAMPLES} seed examples with at least {MIN_QNA_PER_CONTEXT} questions each.",
        "version: 3",
        f"created_by: {_q(author)}",
        f"domain: {_q(TODO_PREFIX + ': a short subject, e.g. astronomy')}",
        f"document_outline: {_q(TODO_PREFIX + ': one line summarising the document')}",
        "seed_examples:",
    ]
    for i in range(1, MIN_SEED_EXAMPLES + 1):
        lines += [
            "  - context: |",
            f"      {TODO_PREFIX}: copy passage {i} of the document here (up to 500 words).",
            "    questions_and_answers:",
        ]
        for j in range(1, MIN_QNA_PER_CONTEXT + 1):
            lines += [
                f"      - question: {_q(f'{TODO_PREFIX}: question {j} about passage {i}')}",
                f"        answer: {_q(f'{TODO_PREFIX}: its answer, from passage {i}')}",
            ]
    lines += [
        "# The documents: files beside this qna.yaml (finch), or a git repo at a commit (InstructLab):",
        "#   document: {repo: https://github.com/you/docs.git, commit: <full SHA>, patterns: [my_doc.md]}",
        "document:",
        "  patterns:",
        f"    - {document_name}",
    ]
    return "\n".join(lines) + "\n"


def skill_yaml(author: str) -> str:
    lines = [
        "# A skill leaf: something the model should be able to do, shown by example.",
        "# Replace every TODO, then run `finch taxonomy check`. Rules: docs/taxonomy.md.",
        "# Freeform skill: question + answer. Grounded skill: add a `context:` to every example (the text the",
        "# question is about). The seed examples together must stay under 2,300 words.",
        "version: 3",
        f"created_by: {_q(author)}",
        f"task_description: {_q(TODO_PREFIX + ': one sentence saying what the skill does')}",
        "seed_examples:",
    ]
    for i in range(1, MIN_SEED_EXAMPLES + 1):
        lines += [
            f"  - question: {_q(f'{TODO_PREFIX}: example question {i}')}",
            "    answer: |",
            f"      {TODO_PREFIX}: the answer you want for question {i}",
        ]
    return "\n".join(lines) + "\n"


ATTRIBUTION = f"""{TODO_PREFIX}: where the material comes from (InstructLab asks for this file). For example:
Title of work: ...
Link to work: ...
License of the work: ...
Creator names: ...
"""


def resolve_leaf_path(kind: str, path: Path, taxonomy_dir: Path) -> Path:
    """Absolute leaf folder for `path` (relative paths are inside the workspace taxonomy), checked for `kind`."""
    if kind not in KINDS:
        raise UsageError(f"unknown leaf kind '{kind}'; use one of: {', '.join(KINDS)}")
    folder = path.expanduser() if path.expanduser().is_absolute() else taxonomy_dir / path
    folder = Path(*folder.parts)  # normalise separators
    tops = [t for t, k in TOP_FOLDERS.items() if k == kind]
    parts = folder.parts
    indexes = [i for i, part in enumerate(parts) if part in TOP_FOLDERS]
    if not indexes or parts[indexes[-1]] not in tops:
        example = f"{tops[0]}/{path.name or 'my_leaf'}"
        raise UsageError(
            f"a {kind} leaf goes under {' or '.join(t + '/' for t in tops)}; {path} is not: "
            f"try `finch taxonomy new {kind} {example}`"
        )
    if indexes[-1] == len(parts) - 1:
        raise UsageError(f"{path} is the top folder itself; name a leaf inside it, e.g. {path}/my_topic")
    if ".." in parts:
        raise UsageError(f"{path}: '..' is not allowed in a leaf path")
    return folder


def new_leaf(kind: str, path: Path, taxonomy_dir: Path, author: str | None = None) -> list[Path]:
    """Write a scaffolded leaf at `path`; returns the files written. Never overwrites a qna file."""
    folder = resolve_leaf_path(kind, path, taxonomy_dir)
    for name in QNA_NAMES:
        if (folder / name).exists():
            raise UsageError(f"{folder / name} already exists; finch will not overwrite it")
    author = author or _author()
    written: list[Path] = []
    if kind == "knowledge":
        doc_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", folder.name) + ".md"
        doc = folder / doc_name
        if not doc.exists():
            atomic_write_text(doc, f"{TODO_PREFIX}: put the document's text here, as markdown.\n")
            written.append(doc)
        text = knowledge_yaml(author, doc_name)
    else:
        text = skill_yaml(author)
    qna = folder / "qna.yaml"
    atomic_write_text(qna, text)
    written.insert(0, qna)
    attribution = folder / "attribution.txt"
    if not attribution.exists():
        atomic_write_text(attribution, ATTRIBUTION)
        written.append(attribution)
    return written
