"""What a check reports: problems with a file position, a severity and the rule that found them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One finding. `line`/`col` are 1-based; 0 means the problem belongs to the whole file."""

    severity: str  # ERROR or WARNING
    rule: str  # the rule's name in docs/taxonomy.md
    message: str
    line: int = 0
    col: int = 0

    def format(self, path: Path | str) -> str:
        where = f"{path}:{self.line}:{self.col}" if self.line else f"{path}"
        return f"{where}: {self.severity}: {self.message}"

    def as_json(self) -> dict:
        return {"line": self.line or None, "col": self.col or None, "message": self.message}


class Reporter:
    """Collects problems for one file."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def error(self, rule: str, message: str, pos: tuple[int, int] | None = None) -> None:
        line, col = pos or (0, 0)
        self.problems.append(Problem(ERROR, rule, message, line, col))

    def warning(self, rule: str, message: str, pos: tuple[int, int] | None = None) -> None:
        line, col = pos or (0, 0)
        self.problems.append(Problem(WARNING, rule, message, line, col))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]
