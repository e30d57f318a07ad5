"""`finch taxonomy check`: every rule on every leaf, all problems of all files in one run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from finch.errors import FinchError
from finch.taxonomy import rules
from finch.taxonomy.documents import DocumentSource, SourceDocument, collect_documents
from finch.taxonomy.lint import load_yaml_file
from finch.taxonomy.problems import Problem, Reporter
from finch.taxonomy.schema import Knowledge, Leaf, Skill, validate
from finch.taxonomy.tree import TOP_FOLDERS, LeafFile, find_leaves


@dataclass
class LeafResult:
    """One qna file: its problems and, when valid, the parsed leaf (and its documents, when they were read)."""

    file: LeafFile
    problems: list[Problem]
    leaf: Leaf | None = None
    kind: str | None = None  # "knowledge" or "skill" (from the folder, else from the content)
    documents: list[SourceDocument] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.file.path

    @property
    def name(self) -> str:
        return self.file.name

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def example_count(self) -> int:
        """Seed examples; for knowledge, question/answer pairs."""
        if isinstance(self.leaf, Knowledge):
            return sum(len(e.questions_and_answers) for e in self.leaf.seed_examples)
        if isinstance(self.leaf, Skill):
            return len(self.leaf.seed_examples)
        return 0


@dataclass
class TaxonomyReport:
    leaves: list[LeafResult]

    @property
    def ok(self) -> bool:
        return all(leaf.valid for leaf in self.leaves)

    @property
    def error_count(self) -> int:
        return sum(len(leaf.errors) for leaf in self.leaves)

    @property
    def warning_count(self) -> int:
        return sum(len(leaf.warnings) for leaf in self.leaves)

    def lines(self, relative_to: Path | None = None) -> list[str]:
        """`path:line:col: severity: message`, file by file, in line order."""
        out: list[str] = []
        for leaf in self.leaves:
            shown = display_path(leaf.path, relative_to)
            out.extend(p.format(shown) for p in sorted(leaf.problems, key=lambda p: (p.line, p.col)))
        return out

    def summary(self) -> str:
        bad = sum(1 for leaf in self.leaves if not leaf.valid)
        n = len(self.leaves)
        head = f"checked {n} lea{'f' if n == 1 else 'ves'}"
        if self.ok:
            return f"{head}: all valid" + (f", {_plural(self.warning_count, 'warning')}" if self.warning_count else "")
        return f"{head}: {bad} invalid, {_plural(self.error_count, 'error')}, {_plural(self.warning_count, 'warning')}"

    def as_json(self, relative_to: Path | None = None) -> dict:
        return {
            "leaves": [
                {
                    "path": display_path(leaf.path, relative_to),
                    "valid": leaf.valid,
                    "errors": [p.as_json() for p in leaf.errors],
                    "warnings": [p.as_json() for p in leaf.warnings],
                }
                for leaf in self.leaves
            ]
        }


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def display_path(path: Path, relative_to: Path | None = None) -> str:
    base = (relative_to or Path.cwd()).absolute()
    absolute = path.absolute()
    return str(absolute.relative_to(base)) if absolute.is_relative_to(base) else str(absolute)


_KNOWLEDGE_ONLY = ("document", "document_outline", "domain")


def _kind_from_content(data: object) -> str:
    if isinstance(data, dict) and any(k in data for k in _KNOWLEDGE_ONLY):
        return "knowledge"
    return "skill"


def _clearly_other_kind(kind: str, data: object) -> list[str] | None:
    """The fields showing that a leaf is of the other kind than its folder says, if it clearly is."""
    if not isinstance(data, dict):
        return None
    knowledge_keys = [k for k in _KNOWLEDGE_ONLY if k in data]
    if kind == "knowledge" and "task_description" in data and not knowledge_keys:
        return ["task_description"]
    if kind == "skill" and len(knowledge_keys) >= 2 and "task_description" not in data:
        return knowledge_keys
    return None


def check_leaf(file: LeafFile, *, skip_documents: bool = True, source: DocumentSource | None = None) -> LeafResult:
    rep = Reporter()
    result = LeafResult(file=file, problems=rep.problems)
    if file.path.name == "qna.yml":
        twin = file.path.with_name("qna.yaml")
        if twin.exists():
            rep.error("qna-name", "this folder also has a qna.yaml; a leaf has one qna file: remove qna.yml")
            return result
        rep.warning("qna-name", "rename qna.yml to qna.yaml: InstructLab only reads qna.yaml (finch checks both)")
    parsed = load_yaml_file(file.path, rep)
    if parsed is None:
        return result
    data = parsed.data
    kind = file.kind or _kind_from_content(data)
    result.kind = kind
    if file.kind is None:
        rep.warning(
            "top-folder",
            f"not under {', '.join(f'{t}/' for t in TOP_FOLDERS)}: read as a {kind} leaf from its fields; "
            "move it under the right top folder",
        )
    others = _clearly_other_kind(kind, data) if file.kind else None
    if others:  # one clear error instead of a schema error for every field
        other = min(others, key=lambda k: parsed.key_pos((k,)))
        actual, where = ("skill", "compositional_skills/") if kind == "knowledge" else ("knowledge", "knowledge/")
        rep.error(
            "wrong-folder",
            f"this is a {actual} leaf (it has '{other}') but it is under {file.top}/: move it under {where}, "
            f"or rewrite it as a {kind} leaf",
            parsed.key_pos((other,)),
        )
        return result
    result.leaf = validate(kind, data, parsed, rep)
    tagged = {(p.line, p.col) for p in rep.problems if p.rule == "yaml-tag"}
    if tagged:  # a rejected tag's value has the wrong type too; saying so again is noise
        rep.problems[:] = [p for p in rep.problems if not (p.rule == "type" and (p.line, p.col) in tagged)]
    if isinstance(data, dict):
        rules.check_text(data, parsed, rep)
        if kind == "knowledge":
            rules.check_knowledge(data, parsed, rep)
        else:
            rules.check_skill(data, parsed, rep)
    if isinstance(result.leaf, Knowledge) and not skip_documents and source is not None:
        document = result.leaf.document
        if not any(p.rule.startswith("document") for p in rep.errors):
            docs, problems = collect_documents(file.folder, document, source)
            result.documents = docs
            for problem in problems:
                pos = parsed.key_pos(problem.where) if problem.where[-1] in ("repo", "folder") else None
                rep.error(problem.rule, problem.message, pos or parsed.pos(problem.where))
    if rep.errors:
        result.leaf = None  # only valid leaves go on to later stages
    return result


def check_taxonomy(
    paths: list[Path], *, skip_documents: bool = False, documents_cache: Path | None = None
) -> TaxonomyReport:
    """Check every qna file under `paths` (folders at any depth of a taxonomy, or qna files).

    Raises FinchError when a path does not exist or holds no qna file; otherwise every problem is in the report.
    `documents_cache` is where git documents are fetched (needed unless skip_documents or all documents are local).
    """
    files = find_leaves(paths)
    if not files:
        where = ", ".join(str(p) for p in paths)
        raise FinchError(
            f"no qna.yaml found under {where}: a leaf is a folder holding a qna.yaml, under knowledge/ or "
            "compositional_skills/. `finch init` copies a sample taxonomy; `finch taxonomy new` scaffolds a leaf"
        )
    source = None if skip_documents else DocumentSource(documents_cache)
    return TaxonomyReport([check_leaf(f, skip_documents=skip_documents, source=source) for f in files])


def sample_taxonomy_dir() -> Path:
    """The sample taxonomy shipped inside the package."""
    return Path(__file__).resolve().parent.parent / "data" / "sample_taxonomy"
