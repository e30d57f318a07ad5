"""`finch data import` and `finch data show --rendered` as a user runs them: exit codes, one-line errors, no
traceback."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_one_line_error, run_finch
from tests.data_import.helpers import write_jsonl

ROWS = [
    {"instruction": f"Name animal number {k} of the list.", "output": f"Animal {k} is the {animal}."}
    for k, animal in enumerate(["spider", "beetle", "heron", "otter", "badger", "marten", "lizard", "salmon"])
]


def test_import_then_show_rendered(finch_home, tiny_gemma3_dir, tmp_path):
    path = write_jsonl(tmp_path / "animals.jsonl", ROWS)
    result = run_finch("data", "import", str(path), "--test-ratio", "0.25", "--model", str(tiny_gemma3_dir))
    assert result.returncode == 0, result.stderr
    assert "train 6 rows, test 2" in result.stdout and "alpaca (jsonl)" in result.stdout
    assert "tokens per row" in result.stdout
    # the default folder is in the workspace's datasets, so `show` finds it by name

    shown = run_finch("data", "show", "import-animals", "--rendered", "--model", str(tiny_gemma3_dir), "--samples", "1")
    assert shown.returncode == 0, shown.stderr
    assert "<start_of_turn>user" in shown.stdout and "trained (highlighted)" in shown.stdout
    as_json = json.loads(
        run_finch(
            "data", "show", "import-animals", "--rendered", "--model", str(tiny_gemma3_dir), "--json", "--samples", "1"
        ).stdout
    )
    [pieces] = as_json["rendered"]
    [sample] = as_json["samples"]
    trained = "".join(p["text"] for p in pieces if p["trained"])
    assert trained == sample["messages"][-1]["content"] + "<end_of_turn>\n"


def test_bad_rows_fail_the_check_with_every_row_named(finch_home, tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(
        json.dumps(ROWS[0]) + "\n" + '{"instruction": "x"}\n' + "not json\n" + json.dumps(ROWS[1]) + "\n",
        encoding="utf-8",
    )
    result = run_finch("data", "import", str(path), "--output", str(tmp_path / "out"))
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout
    assert result.stderr.splitlines() == [
        f"{path}:2: output: missing",
        f"{path}:3: invalid JSON (Expecting value); each line must be one JSON object",
        "finch: error: 2 rows cannot be imported (each listed above); nothing written: fix them, or pass "
        "--skip-invalid to leave them out.",
    ]
    assert not (tmp_path / "out").exists()

    skipping = run_finch("data", "import", str(path), "--output", str(tmp_path / "out"), "--skip-invalid")
    assert skipping.returncode == 0, skipping.stderr
    assert "2 invalid" in skipping.stdout and f"{path}:2: invalid: output: missing" in skipping.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--format", "fancy"], "--format fancy: choose auto, messages, sharegpt, alpaca, prompt-completion or csv"),
        (["--test-ratio", "1.5"], "--test-ratio 1.5: give a share of the rows, at least 0 and below 1"),
    ],
)
def test_usage_errors_are_one_line(finch_home, tmp_path, args, fragment):
    path = write_jsonl(tmp_path / "rows.jsonl", ROWS)
    assert_one_line_error(run_finch("data", "import", str(path), *args), 2, fragment)


def test_missing_files_and_misplaced_flags_are_usage_errors(finch_home, tmp_path):
    missing = tmp_path / "nothing.jsonl"
    assert_one_line_error(run_finch("data", "import", str(missing)), 2, f"{missing}: no such file")
    assert_one_line_error(
        run_finch("data", "show", str(tmp_path), "--model", "default"), 2, "--model: the student to render with"
    )
