"""Which leaves a stage works on: the whole taxonomy, the leaves changed since the main branch, or given paths."""

from __future__ import annotations

from pathlib import Path

from finch.errors import FinchError, SettingError
from finch.taxonomy.check import TaxonomyReport, check_taxonomy
from finch.taxonomy.diff import diff_leaves


class InvalidLeaves(FinchError):
    """The selected leaves have errors; `report.lines()` says which, line by line."""

    def __init__(self, report: TaxonomyReport):
        super().__init__("the selected leaves have errors; fix them (finch taxonomy check) and run again.")
        self.report = report


def select_leaves(taxonomy: Path, leaves: list[str], documents_cache: Path, where: str) -> list:
    """The checked leaves `leaves` names: ["all"], ["changed"] (git diff), or paths. `where`: the settings' name, for
    errors about the `leaves` key."""
    if not taxonomy.exists():
        raise FinchError(f"the taxonomy {taxonomy} does not exist; `finch init` creates one with a sample.")
    if leaves == ["all"]:
        paths = [taxonomy]
    elif leaves == ["changed"]:
        paths = [leaf.path for leaf in diff_leaves(taxonomy).leaves]
        if not paths:
            raise SettingError(
                where, "leaves", f"changed: no leaf under {taxonomy} changed; use all to generate anyway."
            )
    else:
        if "all" in leaves or "changed" in leaves:
            raise SettingError(where, "leaves", "give all, changed, or paths, not a mix.")
        paths = [Path(p) for p in leaves]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise SettingError(where, "leaves", f"no such file or folder: {', '.join(missing)}.")
    report = check_taxonomy(paths, documents_cache=documents_cache)
    if not report.ok:
        raise InvalidLeaves(report)
    return report.leaves
