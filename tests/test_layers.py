"""finch's layers are a contract (pyproject.toml, checked by lint-imports in `make test`): no import cycles between
packages, only the CLI imports the CLI, only the CLI draws on the terminal."""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter brings tomli
    import tomli as tomllib

import finch

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def contracts() -> list[dict]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """lint-imports over the finch package under root/src, with the repository's contracts."""
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(REPO / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_package_but_the_cli_is_held_to_the_forbidden_contracts():
    packages = {f"finch.{m.name}" for m in pkgutil.iter_modules(finch.__path__)} - {"finch.cli"}
    forbidden = [c for c in contracts() if c["type"] == "forbidden"]
    assert len(forbidden) == 2
    for contract in forbidden:
        assert set(contract["source_modules"]) == packages, contract["name"]


@pytest.mark.parametrize(
    ("module", "source", "broken"),
    [
        ("sdg/bar.py", "from rich.progress import Progress\n", "Only the CLI draws on the terminal"),
        ("train/view.py", "import finch.cli.ui\n", "Only the CLI imports the CLI"),
        ("taxonomy/back.py", "import finch.sdg.generate\n", "No import cycles"),
    ],
)
def test_the_contracts_catch_a_module_that_breaks_them(tmp_path, module, source, broken):
    shutil.copytree(REPO / "src" / "finch", tmp_path / "src" / "finch", ignore=shutil.ignore_patterns("__pycache__"))
    assert lint_imports(tmp_path).returncode == 0  # the checkout as it is keeps them all
    (tmp_path / "src" / "finch" / module).write_text(source)
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    assert f"{broken}" in result.stdout.split("Broken contracts")[-1]
