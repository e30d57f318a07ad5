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
