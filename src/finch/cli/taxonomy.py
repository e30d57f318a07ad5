"""`finch taxonomy check|diff|tree|new`: thin wrappers over finch.taxonomy."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.markup import escape
from rich.tree import Tree

from finch.cli.common import print_json
from finch.cli.ui import err, out
from finch.config import load_settings
from finch.errors import FinchError
from finch.taxonomy.check import LeafResult, check_taxonomy, display_path
from finch.taxonomy.diff import EMPTY, diff_leaves
from finch.taxonomy.scaffold import KINDS, new_leaf

taxonomy_app = typer.Typer(help="Check, diff, show and scaffold the taxonomy.", no_args_is_help=True)


class Format(str, Enum):
    text = "text"
    json = "json"


def _default_paths(paths: list[Path] | None) -> list[Path]:
    if paths:
        return list(paths)
    taxonomy = load_settings().path("taxonomy_dir")
    if not taxonomy.exists():
        raise FinchError(f"the workspace taxonomy {taxonomy} does not exist yet: `finch init` creates it with a sample")
    return [taxonomy]


@taxonomy_app.command("check")
def check(
    paths: list[Path] = typer.Argument(
        None, help="Folders (at any depth of a taxonomy) or qna.yaml files. Default: the workspace taxonomy."
    ),
    skip_documents: bool = typer.Option(False, "--skip-documents", help="Do not read or fetch knowledge documents."),
    format: Format = typer.Option(Format.text, "--format", help="text: one line per problem; json: a report."),
) -> None:
    """Validate qna.yaml leaves with line-precise errors; exit 1 when any has an error."""
    settings = load_settings()
    report = check_taxonomy(
        _default_paths(paths),
        skip_documents=skip_documents,
        documents_cache=settings.locations.cache_dir / "documents",
    )
    if format is Format.json:
        print_json(report.as_json())
    else:
        for line in report.lines():
            out.print(escape(line))
        err.print(report.summary())
    if not report.ok:
        raise typer.Exit(1)


def _leaf_label(leaf: LeafResult, last: str) -> str:
    if not leaf.valid:
        n = len(leaf.errors)
        return f"{escape(last)} [red](invalid: {n} error{'s' if n != 1 else ''}; run finch taxonomy check)[/red]"
    if leaf.kind == "knowledge":
        contexts = len(leaf.leaf.seed_examples)  # type: ignore[union-attr]
        return f"{escape(last)} [dim](knowledge: {contexts} contexts, {leaf.example_count} Q&A)[/dim]"
    style = "grounded" if leaf.leaf.grounded else "freeform"  # type: ignore[union-attr]
    return f"{escape(last)} [dim](skill, {style}: {leaf.example_count} examples)[/dim]"


@taxonomy_app.command("tree")
def tree(
    paths: list[Path] = typer.Argument(None, help="Folders to show. Default: the workspace taxonomy."),
) -> None:
    """The taxonomy tree with example counts per leaf."""
    roots = _default_paths(paths)
    report = check_taxonomy(roots, skip_documents=True)
    top = Tree(f"[bold]{escape(', '.join(str(p) for p in roots))}")
    nodes: dict[tuple[str, ...], Tree] = {(): top}
    for leaf in sorted(report.leaves, key=lambda r: r.name):
        parts = tuple(leaf.name.split("->"))
        for i in range(1, len(parts)):
            if parts[:i] not in nodes:
                nodes[parts[:i]] = nodes[parts[: i - 1]].add(escape(parts[i - 1]))
        label = _leaf_label(leaf, parts[-1])
        if parts in nodes:  # a leaf that also holds leaves
            nodes[parts].label = label
        else:
            nodes[parts] = nodes[parts[:-1]].add(label)
    out.print(top)
    total = sum(r.example_count for r in report.leaves)
    err.print(f"{len(report.leaves)} leaves, {total} seed examples (knowledge: Q&A pairs)")


@taxonomy_app.command("diff")
def diff(
    path: Path = typer.Argument(None, help="Taxonomy folder inside a git repository. Default: the workspace one."),
    base: str = typer.Option(
        None,
        "--base",
        help=f"Git ref to compare with (default: origin/main, main or master); '{EMPTY}' lists every leaf.",
    ),
    format: Format = typer.Option(Format.text, "--format", help="text or json."),
) -> None:
    """Leaves added or changed against the merge-base with a git ref, plus untracked files."""
    root = path or _default_paths(None)[0]
    result = diff_leaves(root, base)
    if format is Format.json:
        print_json(
            {
                "base": result.base,
                "merge_base": result.merge_base,
                "leaves": [
                    {"name": leaf.name, "path": display_path(leaf.path), "untracked": result.is_untracked(leaf)}
                    for leaf in result.leaves
                ],
            }
        )
        return
    for leaf in result.leaves:
        note = "  (untracked)" if result.is_untracked(leaf) else ""
        out.print(f"{escape(leaf.name)}  {escape(display_path(leaf.path))}{note}")
    if result.leaves:
        against = "every leaf" if result.base == EMPTY else f"against {result.base}"
        err.print(f"{len(result.leaves)} of {result.total_leaves} leaves ({against})")
    else:
        err.print(escape(result.explain_nothing()))


@taxonomy_app.command("new")
def new(
    kind: str = typer.Argument(..., help=f"What to scaffold: {' or '.join(KINDS)}."),
    path: Path = typer.Argument(..., help="Leaf folder, e.g. knowledge/history/my_topic (relative to --taxonomy)."),
    taxonomy: Path = typer.Option(
        None, "--taxonomy", help="Folder a relative PATH is in (default: the workspace taxonomy; '.' for here)."
    ),
) -> None:
    """Scaffold a knowledge or skill leaf: fill in its TODOs, then run `finch taxonomy check`."""
    written = new_leaf(kind, path, taxonomy or load_settings().path("taxonomy_dir"))
    for file in written:
        out.print(f"created {escape(str(file))}")
    err.print(f"next: replace the TODOs, then run `finch taxonomy check {escape(str(written[0].parent))}`")
