"""kill -9 or Ctrl-C in the middle of a generation, rerun: nothing lost, nothing duplicated, the same dataset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import REPO
from tests.sdg.helpers import generate, journals, rows
from tests.sdg.teacher import start_teacher


def test_kill_9_mid_run_then_rerun_loses_nothing_and_duplicates_nothing(tmp_path):
    teacher = start_teacher(delay=0.05)
    try:
        reference = start_teacher()
        generate(reference.url, tmp_path / "reference")
        reference.shutdown()

        out = tmp_path / "killed"
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.sdg.helpers", teacher.url, str(out), "4"],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"},
        )
        try:
            while child.poll() is None and not _mid_block(out, 40):
                time.sleep(0.01)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait()
        assert child.returncode == -signal.SIGKILL, "the run finished before it could be killed"
        assert not (out / "report.json").exists()
        before = journals(out)
        on_disk = sum(len(r) for r in before.values())
        assert 40 <= on_disk < len(reference.requests)
        # a kill can also land in the middle of a write to an unfinished block's journal: leave a torn line there
        unfinished = [name for name in before if not (out / name).with_suffix(".done").exists()]
        for name in unfinished[:1]:  # none when the kill fell between two blocks
            with open(out / name, "a", encoding="utf-8") as f:
                f.write('{"call": "torn", "items": [{"quest')

        asked_before_resume = len(teacher.requests)
        teacher.delay = 0
        report = generate(teacher.url, out)
    finally:
        teacher.shutdown()

    after = journals(out)
    for name, records in before.items():
        assert after[name][: len(records)] == records, name  # every accepted record survived, unchanged
    for name, records in after.items():
        ids = [r["call"] for r in records]
        assert len(ids) == len(set(ids)), f"{name}: a call recorded twice"
    # the rerun asked only for what had no record: the calls in flight at the kill and those never started
    assert len(teacher.requests) - asked_before_resume == len(reference.requests) - on_disk
    assert report["complete"] and all(leaf["status"] == "complete" for leaf in report["leaves"])
    assert rows(out / "train.jsonl") == rows(tmp_path / "reference" / "train.jsonl")
    assert rows(out / "knowledge_mcq.jsonl") == rows(tmp_path / "reference" / "knowledge_mcq.jsonl")


def _mid_block(out, at_least: int) -> bool:
    """At least `at_least` records on disk, and a block under way (its journal started, not finished)."""
    try:
        found = journals(out)
    except (OSError, ValueError):  # read while the child writes: a torn line
        return False
    under_way = [n for n, r in found.items() if r and not (out / n).with_suffix(".done").exists()]
    return sum(len(r) for r in found.values()) >= at_least and bool(under_way)


def test_ctrl_c_writes_the_finished_leaves_and_the_report(tmp_path):
    teacher = start_teacher(delay=0.05)
    out = tmp_path / "interrupted"
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.sdg.helpers", teacher.url, str(out), "2"],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"},
            stderr=subprocess.PIPE,
            text=True,
            # a suite started in the background (`make test &`) inherits SIGINT ignored, and Python keeps an ignored
            # SIGINT ignored: the child would never see Ctrl-C
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            while child.poll() is None and not _second_leaf(out):
                time.sleep(0.01)
            child.send_signal(signal.SIGINT)
            _, stderr = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
    finally:
        teacher.shutdown()
    assert child.returncode != 0 and "KeyboardInterrupt" in stderr, (child.returncode, stderr[-2000:])
    report = json.loads((out / "report.json").read_text())
    assert not report["complete"]
    statuses = [leaf["status"] for leaf in report["leaves"]]
    assert statuses[0] == "complete" and "not finished" in statuses
    assert len(rows(out / "train.jsonl")) == report["leaves"][0]["train"] > 0


def _second_leaf(out) -> bool:
    """The first leaf is written and the second has started."""
    return len(list(out.glob(".work/*/00-*.jsonl"))) >= 2
