"""DPO through TRL on a tiny model: the chosen answers win more margin, and the run dir holds a loadable adapter."""

from __future__ import annotations

import pytest
import yaml

from finch.errors import UsageError
from finch.train import TrainConfig
from finch.train.dpo import read_preferences
from finch.train.runs import start_run
from tests.train.datasets import FACTS, write_jsonl

pytest.importorskip("trl")


def preference_rows() -> list[dict]:
    rows = []
    for i, (question, answer) in enumerate(FACTS * 3):
        wrong = "I do not know." if i % 2 else "It is a kind of cheese."
        if i % 3 == 0:  # conversational rows too
            rows.append(
                {
                    "prompt": [{"role": "user", "content": question}],
                    "chosen": [{"role": "assistant", "content": answer}],
                    "rejected": [{"role": "assistant", "content": wrong}],
                }
            )
        else:
            rows.append({"prompt": question, "chosen": answer, "rejected": wrong})
    return rows


def test_dpo_moves_towards_the_chosen_answers(tmp_path, tiny_gemma3_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    write_jsonl(tmp_path / "prefs" / "train.jsonl", preference_rows())
    config = TrainConfig(
        data=tmp_path / "prefs", output=tmp_path / "run", method="dpo", max_steps=12, lr=5e-3, batch_size=4
    )
    result = start_run(config, tmp_path / "models", tmp_path / "runs", str(tiny_gemma3_dir))
    assert result.steps == 12 and len(result.log) == 12
    assert result.log[0]["loss"] == pytest.approx(0.6931, abs=0.01)  # log(2): policy == reference at the start
    assert result.log[-1]["loss"] < 0.5 and result.log[-1]["rewards_margins"] > 0
    meta = yaml.safe_load((result.run_dir / "run.yaml").read_text())
    assert meta["status"] == "finished" and meta["config"]["method"] == "dpo"
    assert meta["base_model"] == str(tiny_gemma3_dir)
    assert (result.run_dir / "loss.png").is_file()
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_gemma3_dir), result.run_dir)


def test_bad_preference_rows_name_the_line(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [{"prompt": "q", "chosen": "a"}])
    with pytest.raises(UsageError, match=r"train.jsonl:1: a preference row is"):
        read_preferences(path)
    path = write_jsonl(tmp_path / "train.jsonl", [{"prompt": "q", "chosen": "", "rejected": "b"}])
    with pytest.raises(UsageError, match="train.jsonl:1: chosen: must be a non-empty string"):
        read_preferences(path)


def test_dpo_honours_eval_checkpoints_early_stopping_and_resume(tmp_path, tiny_gemma3_dir):
    """Every step record counts its tokens; evals land in the records of their steps, the best adapter is kept,
    early stopping stops, and a run resumed from its last TRL checkpoint ends where an uninterrupted one does."""
    rows = preference_rows()
    write_jsonl(tmp_path / "prefs" / "train.jsonl", rows)
    write_jsonl(tmp_path / "prefs" / "test.jsonl", rows[:6])
    settings = dict(data=tmp_path / "prefs", method="dpo", max_steps=8, lr=5e-3, batch_size=4, max_seq_len=64)
    whole = start_run(
        TrainConfig(**settings, output=tmp_path / "whole", eval_every=2, save_every=4),
        tmp_path / "models",
        tmp_path / "runs",
        str(tiny_gemma3_dir),
    )
    assert [r["step"] for r in whole.log] == list(range(1, 9))
    assert all(r["tokens"] > 0 and r["tokens_per_s"] > 0 for r in whole.log)
    assert whole.tokens_per_s > 0
    assert [r["step"] for r in whole.log if "eval_loss" in r] == [2, 4, 6, 8]
    assert whole.best_eval_loss == pytest.approx(min(r["eval_loss"] for r in whole.log if "eval_loss" in r), abs=1e-6)
    assert (whole.run_dir / "best" / "adapter_model.safetensors").is_file()
    kept = sorted(p.name for p in (whole.run_dir / "checkpoints").glob("checkpoint-*"))
    assert kept == ["checkpoint-4", "checkpoint-8"]  # keep_checkpoints: the newest 2, as in finch's loop

    # the same run crashing at step 6, after its checkpoint at step 4, then resumed: steps 5 and 6 run again
    class Crash(Exception):
        pass

    def crash_at_6(record):
        if record["step"] == 6:
            raise Crash

    cut = tmp_path / "cut"
    with pytest.raises(Crash):
        start_run(
            TrainConfig(**settings, output=cut, eval_every=2, save_every=4),
            tmp_path / "models",
            tmp_path / "runs",
            str(tiny_gemma3_dir),
            on_step=crash_at_6,
        )
    assert [p.name for p in (cut / "checkpoints").glob("checkpoint-*")] == ["checkpoint-4"]
    resumed = start_run(TrainConfig(), tmp_path / "models", tmp_path / "runs", "unused", resume=str(cut))
    assert [r["step"] for r in resumed.log] == list(range(1, 9))
    assert resumed.log[-1]["loss"] == pytest.approx(whole.log[-1]["loss"], rel=0.05)

    # a learning rate too small to move the weights: the eval loss never improves, so patience 2 stops at step 3
    still = start_run(
        TrainConfig(**{**settings, "lr": 1e-12}, output=tmp_path / "still", eval_every=1, early_stopping_patience=2),
        tmp_path / "models",
        tmp_path / "runs",
        str(tiny_gemma3_dir),
    )
    assert still.steps == 3 and [r["step"] for r in still.log] == [1, 2, 3]


def test_dpo_refuses_what_it_cannot_do(tmp_path, tiny_gemma3_dir):
    write_jsonl(tmp_path / "prefs" / "train.jsonl", preference_rows())
    for key, value in (("loss_chunk_tokens", 256), ("forward_tokens", 128)):
        config = TrainConfig(data=tmp_path / "prefs", method="dpo", max_steps=2, **{key: value})
        with pytest.raises(UsageError, match=f"{key}: a setting of finch's own SFT loop"):
            start_run(config, tmp_path / "models", tmp_path / "runs", str(tiny_gemma3_dir))
    assert not (tmp_path / "runs").exists()  # refused before a run directory exists
    with pytest.raises(ValueError, match="early_stopping_patience\n.*counts evals"):
        TrainConfig(method="dpo", early_stopping_patience=2)
