"""`finch taxonomy diff`: leaves added or changed against the merge-base with a git ref, plus untracked files.

A leaf counts as changed when any file inside its folder changed (its qna.yaml, a local document, its
attribution.txt): committed since the merge-base, staged, unstaged or untracked. Files ignored by .gitignore
do not count. `--base empty` means every leaf, with no git needed.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from finch.errors import FinchError, UsageError
from finch.taxonomy.tree import LeafFile, find_leaves

EMPTY = "empty"
DEFAULT_BASES = ("origin/main", "main", "master")


@dataclass
class DiffResult:
    root: Path
    base: str  # the ref compared with, or "empty"
    merge_base: str | None
    leaves: list[LeafFile]  # added or changed
    untracked: set[Path] = field(default_factory=set)  # leaf folders holding untracked files
    total_leaves: int = 0
    outside_leaves: list[str] = field(default_factory=list)  # changed files not inside any leaf folder
    head_is_base: bool = False

    def is_untracked(self, leaf: LeafFile) -> bool:
        return leaf.folder.resolve() in self.untracked

    def explain_nothing(self) -> str:
        """Why no leaf was found, in plain words (InstructLab's 'no new leaf nodes' done right)."""
        if self.total_leaves == 0:
            return f"no leaves at all: there is no qna.yaml under {self.root}."
        if self.base == EMPTY:  # pragma: no cover - empty base lists every leaf
            return "no leaves."
        mb = (self.merge_base or "")[:12]
        if self.outside_leaves:
            shown = ", ".join(self.outside_leaves[:5]) + (" ..." if len(self.outside_leaves) > 5 else "")
            return (
                f"no leaf added or changed against {self.base} (merge-base {mb}): {len(self.outside_leaves)} "
                f"changed file(s) under {self.root}, but none inside a leaf folder (a folder holding qna.yaml): "
                f"{shown}"
            )
        message = (
            f"no leaf added or changed against {self.base} (merge-base {mb}): all {self.total_leaves} leaves "
            f"under {self.root} are as they are there. Committed, staged, unstaged and untracked changes count; "
            "files ignored by .gitignore do not."
        )
        if self.head_is_base:
            message += (
                f" HEAD is the merge-base itself (you are on {self.base} or behind it), so only uncommitted "
                "changes could count."
            )
        return message + " `--base empty` lists every leaf."


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120
        )
    except FileNotFoundError:
        raise FinchError("git is not installed: `finch taxonomy diff` needs it (or use `--base empty`)") from None


def _verify(root: Path, ref: str) -> str | None:
    result = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return result.stdout.strip() if result.returncode == 0 else None


def _z(output: str) -> list[str]:
    return [p for p in output.split("\0") if p]


def default_base(toplevel: Path) -> str:
    for ref in DEFAULT_BASES:
        if _verify(toplevel, ref):
            return ref
    raise UsageError(
        f"no base to compare with: {toplevel} has none of {', '.join(DEFAULT_BASES)}; name one with --base REF, "
        "or use --base empty for every leaf"
    )


def diff_leaves(root: Path, base: str | None = None) -> DiffResult:
    """Leaves under `root` added or changed against the merge-base of `base` and HEAD (see the module doc)."""
    if not root.is_dir():
        raise UsageError(f"{root}: no such folder")
    leaves = find_leaves([root])
    if base == EMPTY:
        return DiffResult(root=root, base=EMPTY, merge_base=None, leaves=leaves, total_leaves=len(leaves))
    top = _git(root, "rev-parse", "--show-toplevel")
    if top.returncode:
        raise FinchError(
            f"{root} is not in a git repository, so there is no history to diff against; "
            "`finch taxonomy diff --base empty` lists every leaf"
        )
    toplevel = Path(top.stdout.strip())
    base = base or default_base(toplevel)
    base_sha = _verify(toplevel, base)
    if base_sha is None:
        branches = _z(
            _git(toplevel, "for-each-ref", "--format=%(refname:short)%00", "refs/heads", "refs/remotes").stdout
        )
        known = ", ".join(b.strip() for b in branches if b.strip()) or "none"
        raise UsageError(f"unknown git ref '{base}' in {toplevel}; branches: {known}")
    head = _verify(toplevel, "HEAD")
    if head is None:  # no commit yet: compare with the base itself
        merge_base = base_sha
    else:
        mb = _git(toplevel, "merge-base", base_sha, head)
        if mb.returncode:
            raise FinchError(f"'{base}' and HEAD share no history (no merge-base); pick another --base")
        merge_base = mb.stdout.strip()
    rel = root.resolve().relative_to(toplevel.resolve())
    pathspec = str(rel) if str(rel) != "." else "."
    changed = _git(toplevel, "diff", "--name-only", "-z", "--no-renames", "--diff-filter=d", merge_base, "--", pathspec)
    if changed.returncode:
        raise FinchError(f"git diff failed in {toplevel}: {changed.stderr.strip()}")
    others = _git(toplevel, "ls-files", "--others", "--exclude-standard", "-z", "--", pathspec)
    untracked_files = _z(others.stdout)
    by_folder = {leaf.folder.resolve(): leaf for leaf in leaves}
    hit: dict[Path, LeafFile] = {}
    untracked: set[Path] = set()
    outside: list[str] = []
    top_resolved = toplevel.resolve()
    for name, is_untracked in [(n, False) for n in _z(changed.stdout)] + [(n, True) for n in untracked_files]:
        folder = (top_resolved / name).parent
        leaf = None
        while True:
            leaf = by_folder.get(folder)
            if leaf is not None or folder == top_resolved or folder == folder.parent:
                break
            folder = folder.parent
        if leaf is None:
            outside.append(name)
            continue
        hit[folder] = leaf
        if is_untracked:
            untracked.add(folder)
    return DiffResult(
        root=root,
        base=base,
        merge_base=merge_base,
        leaves=sorted(hit.values(), key=lambda leaf: str(leaf.path)),
        untracked=untracked,
        total_leaves=len(leaves),
        outside_leaves=outside,
        head_is_base=head == merge_base,
    )
