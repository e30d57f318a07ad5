"""The CLI as a user meets it: the command tree, pending commands, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, run_finch

TREE = [
    "init",
    "config",
    "system",
    "model",
    "taxonomy",
    "data",
    "train",
    "evaluate",
    "export",
    "serve",
    "chat",
    "plan",
    "quickstart",
]


def test_help_lists_the_whole_tree():
    result = run_finch("--help")
    assert result.returncode == 0
    for command in TREE:
        assert f" {command} " in result.stdout, command


def test_the_cli_starts_without_torch():
    """torch takes ~1.7 s to import on 2 cores: a usage error, --help, taxonomy and data commands must not wait for
    it (only the commands that run a model import it)."""
    import subprocess
    import sys

    code = "import sys, finch.cli.main; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


@pytest.mark.parametrize("group", ["config", "system", "model", "taxonomy", "data", "plan"])
def test_every_group_has_help(group):
    result = run_finch(group, "--help")
    assert result.returncode == 0
    assert "Usage: finch " + group in " ".join(result.stdout.split())


def test_bad_config_key_is_one_line(finch_home):
    finch_home.mkdir()
    (finch_home / "config.yaml").write_text("model: default\ncolour: blue\n")
    assert_one_line_error(run_finch("config", "show"), 2, "config.yaml:2", "unknown key 'colour'")


def test_unknown_model_reference_is_one_line(finch_home):
    assert_one_line_error(run_finch("model", "info", "no-such-model"), 2, "unknown model reference 'no-such-model'")


def test_missing_model_file_is_one_line(finch_home, tmp_path):
    missing = tmp_path / "missing.gguf"
    assert_one_line_error(run_finch("model", "info", str(missing)), 2, str(missing), "no such file")


def test_remove_unknown_cached_model_is_one_line(finch_home):
    assert_one_line_error(run_finch("model", "remove", "nothing-here"), 2, "no cached model named 'nothing-here'")


def test_init_then_config_show(finch_home):
    result = run_finch("init", "--non-interactive", "--model", "./student")
    assert result.returncode == 0, result.stderr
    assert (finch_home / "config.yaml").is_file()
    shown = json.loads(run_finch("config", "show", "--json").stdout)
    assert shown["model"] == {"value": "./student", "source": "file"}
    assert shown["runs_dir"]["source"] == "env (FINCH_HOME)"
    assert run_finch("config", "path").stdout.strip() == str((finch_home / "config.yaml").resolve())


def test_system_info_json_reports_cpu_bf16_and_profile(finch_home):
    result = run_finch("system", "info", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    flags = Path("/proc/cpuinfo").read_text().split()
    native_bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    assert info["cpu_bf16"] is native_bf16
    assert info["profile"]["device"] == "cpu"
    assert info["profile"]["dtype"] == ("bfloat16" if native_bf16 else "float32")
    assert info["profile"]["qlora_possible"] is False
    assert info["cpu_cores"] >= 1 and info["ram_gb"] > 0
    assert info["packages"]["torch"]
    text = run_finch("system", "info").stdout
    assert "CPU bf16" in text and "Profile: dtype" in text


def test_a_finished_stage_s_progress_bar_stops_its_clock():
    from finch.cli.views import RichProgress

    progress = RichProgress()
    progress.start("leaf", "qa", total=3, done=0)
    progress.advance(kept=1, rejected=0)
    progress.finish()  # a stage that ended early (a failure, Ctrl-C) must not go on counting time or an ETA
    progress.progress.stop()
    [task] = progress.progress.tasks
    assert task.stop_time is not None and task.completed == 1  # without finish(), stop_time stays None
