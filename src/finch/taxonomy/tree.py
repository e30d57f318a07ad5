"""Finding leaves: folders holding a qna.yaml under knowledge/, compositional_skills/ or foundational_skills/."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from finch.errors import UsageError

TOP_FOLDERS = {"knowledge": "knowledge", "compositional_skills": "skill", "foundational_skills": "skill"}
QNA_NAMES = ("qna.yaml", "qna.yml")


@dataclass(frozen=True)
class LeafFile:
    """One qna file found in a tree."""

    path: Path  # the qna.yaml (or qna.yml)
    name: str  # InstructLab-style: compositional_skills->writing->haiku
    top: str | None  # knowledge / compositional_skills / foundational_skills, or None when outside them

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def kind(self) -> str | None:
        """'knowledge' or 'skill' from the folder; None when the leaf is not under a top folder."""
        return TOP_FOLDERS.get(self.top) if self.top else None


# A version-control store holds no leaves; every other folder is searched, hidden ones too: the InstructLab
# taxonomy has a real leaf committed under knowledge/Users/<name>/.local/share/instructlab/taxonomy/...
VCS_FOLDERS = {".git", ".hg", ".svn"}


def find_qna_files(root: Path) -> list[Path]:
    """qna.yaml/qna.yml files under `root` (or `root` itself when it is one), sorted; VCS_FOLDERS skipped."""
    if root.is_file():
        return [root]
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in VCS_FOLDERS)
        found.extend(Path(folder) / name for name in QNA_NAMES if name in files)
    return sorted(found)


def leaf_for(path: Path, root: Path) -> LeafFile:
    """Name a qna file found by searching `root`.

    When `root` is at or inside a top folder, the name starts at the innermost top folder among root's parts;
    otherwise at the first top folder below root. Outside any top folder the name is the path from root.
    """
    folder = path.parent
    root_dir = root.parent if root.is_file() else root
    root_parts = root_dir.absolute().parts
    try:
        rel_parts = folder.absolute().relative_to(root_dir.absolute()).parts
    except ValueError:
        rel_parts = ()
    parts = root_parts + rel_parts
    start = None
    for i in range(len(root_parts) - 1, -1, -1):
        if root_parts[i] in TOP_FOLDERS:
            start = i
            break
    if start is None:
        for j, part in enumerate(rel_parts):
            if part in TOP_FOLDERS:
                start = len(root_parts) + j
                break
    if start is None:
        name_parts = rel_parts or (folder.name,)
        return LeafFile(path=path, name="->".join(name_parts), top=None)
    return LeafFile(path=path, name="->".join(parts[start:]), top=parts[start])


def find_leaves(paths: list[Path]) -> list[LeafFile]:
    """Every qna file under each of `paths`, each once, in path order."""
    leaves: dict[Path, LeafFile] = {}
    for root in paths:
        if not root.exists():
            raise UsageError(f"{root}: no such file or folder")
        for path in find_qna_files(root):
            key = path.absolute()
            if key not in leaves:
                leaves[key] = leaf_for(path, root)
    return list(leaves.values())


def taxonomy_root(path: Path) -> Path:
    """The folder holding the top folders, for a path at or inside a taxonomy (the path itself otherwise)."""
    path = path.absolute()
    for candidate in (path, *path.parents):
        if candidate.name in TOP_FOLDERS:
            return candidate.parent
    return path
