"""Helpers for the taxonomy tests: the real CLI in a subprocess, git repos in temp dirs.

A uniquely named module rather than conftest.py, so that `import` finds it even beside other conftest files.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import run_finch as run_cli

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
MALFORMED = HERE / "malformed"
INSTRUCTLAB = HERE / "instructlab"


def run_finch(args: list[str], home: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`finch ARGS` as a user runs it: a new process, this checkout's sources, FINCH_HOME set."""
    return run_cli(*args, env={"FINCH_HOME": str(home)}, cwd=cwd, timeout=120)


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_SYSTEM": os.devnull,
    }
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True)
    return result.stdout.strip()


def init_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    return path


def commit_all(repo: Path, message: str = "commit") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")
