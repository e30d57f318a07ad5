"""Phased training: knowledge rows, then skills rows plus replay; each phase resumes; the best eval loss wins."""

from __future__ import annotations

import pytest
import yaml

from finch.train import TrainConfig
from finch.train.runs import start_run
from tests.train.datasets import chat_rows, write_jsonl

SKILLS = [
    ("Rewrite politely: give me the report.", "Could you please send me the report?"),
    ("Rewrite politely: move your car.", "Would you mind moving your car, please?"),
    ("Rewrite politely: stop talking.", "Could we pause the conversation for a moment?"),
]


def skill_rows(n: int) -> list[dict]:
    return [
        {
            "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
            "metadata": {"leaf": "polite", "kind": "skill", "phase": "skills"},
        }
        for q, a in (SKILLS[i % len(SKILLS)] for i in range(n))
    ]


def write_phased_dataset(folder):
    write_jsonl(folder / "train.jsonl", chat_rows(12) + skill_rows(9))
    write_jsonl(folder / "test.jsonl", chat_rows(4, seed=1) + skill_rows(3))
    write_jsonl(folder / "replay.jsonl", [{"messages": r["messages"]} for r in chat_rows(8, seed=2)])
    return folder


SETTINGS = {"max_steps": 6, "lr": 1e-2, "batch_size": 2, "max_seq_len": 128, "eval_every": 2, "save_every": 2}


def phased_run(tmp_path, model_dir, name, on_step=None, resume=None):
    data = write_phased_dataset(tmp_path / "data")
    config = TrainConfig(
        data=data, output=tmp_path / name, phased=True, replay=data / "replay.jsonl", replay_ratio=0.5, **SETTINGS
    )
    return start_run(
        config if resume is None else TrainConfig(),
        tmp_path / "models",
        tmp_path / "runs",
        str(model_dir),
        resume=resume,
        on_step=on_step,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_gemma3_dir):
    tmp_path = tmp_path_factory.mktemp("phased")
    return phased_run(tmp_path, tiny_gemma3_dir, "reference"), tmp_path


def test_phases_train_their_own_rows_and_the_best_adapter_is_the_result(reference):
    result, _ = reference
    run_dir = result.run_dir
    phase1 = yaml.safe_load((run_dir / "phase-1-knowledge" / "run.yaml").read_text())
    phase2 = yaml.safe_load((run_dir / "phase-2-skills" / "run.yaml").read_text())
    assert phase1["train_samples"] == 12  # the knowledge rows only
    assert phase2["train_samples"] == 9 + 4  # the skills rows plus round(0.5 x 9) replay rows
    assert phase1["status"] == phase2["status"] == "finished"

    meta = yaml.safe_load((run_dir / "run.yaml").read_text())
    losses = meta["result"]["phase_eval_losses"]
    best_phase = meta["result"]["best_phase"]
    assert losses[best_phase - 1] == min(losses) == result.eval_loss
    best_dir = run_dir / ("phase-1-knowledge" if best_phase == 1 else "phase-2-skills") / "best"
    assert (run_dir / "adapter_model.safetensors").read_bytes() == (best_dir / "adapter_model.safetensors").read_bytes()
    assert [r["step"] for r in result.log] == list(range(1, 13))
    assert [r["phase"] for r in result.log] == [1] * 6 + [2] * 6


def test_phase_two_starts_from_phase_one(reference, tiny_gemma3_dir):
    """Phase 2's first eval is far below a fresh adapter's: it continued from phase 1's best, not from scratch."""
    result, tmp_path = reference
    fresh = start_run(
        TrainConfig(data=tmp_path / "data", output=tmp_path / "fresh", **{**SETTINGS, "max_steps": 2}),
        tmp_path / "models",
        tmp_path / "runs",
        str(tiny_gemma3_dir),
    )
    phase2_first_eval = next(r["eval_loss"] for r in result.log if r["phase"] == 2 and "eval_loss" in r)
    assert phase2_first_eval < 0.8 * fresh.log[-1]["eval_loss"]


def test_a_crash_in_phase_two_resumes_there_and_ends_like_the_uninterrupted_run(reference, tiny_gemma3_dir):
    result, tmp_path = reference

    class Crash(Exception):
        pass

    def crash(record):
        if record["phase"] == 2 and record["step"] == 5:  # after phase 2's checkpoint at step 4
            raise Crash

    with pytest.raises(Crash):
        phased_run(tmp_path, tiny_gemma3_dir, "crashed", on_step=crash)
    assert yaml.safe_load((tmp_path / "crashed" / "phase-1-knowledge" / "run.yaml").read_text())["status"] == "finished"

    messages = []
    resumed = start_run(
        TrainConfig(),
        tmp_path / "models",
        tmp_path / "runs",
        "unused",
        resume=str(tmp_path / "crashed"),
        on_message=messages.append,
    )
    assert any("phase 1 (knowledge) already finished" in m for m in messages)
    assert resumed.steps == result.steps == 12
    assert resumed.eval_loss == pytest.approx(result.eval_loss, rel=0.01)
    assert resumed.train_loss == pytest.approx(result.train_loss, rel=0.01)
