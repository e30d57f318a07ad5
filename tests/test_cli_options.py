"""A stage's flags are made from its typed config: every field is a flag with the field's help and default, every
flag (but the command's own few) is a field, and an error about a value names the flag that set it."""

from __future__ import annotations

import typer.main

from finch.cli.main import app
from finch.evaluate.config import EvalConfig
from finch.export.config import ExportConfig
from finch.sdg.config import GenerateConfig
from finch.serve.config import ServeConfig
from finch.study.hparams import HparamsConfig
from finch.study.iterations import IterationsConfig
from finch.train.config import TrainConfig
from tests.conftest import assert_one_line_error, run_finch

# stage -> (its config, the command's own options that are not settings)
STAGES = {
    ("train",): (TrainConfig, {"config_file", "resume", "force"}),
    ("data", "generate"): (GenerateConfig, {"config_file"}),
    ("evaluate",): (EvalConfig, {"config_file"}),
    ("export",): (ExportConfig, {"config_file"}),
    ("serve",): (ServeConfig, {"config_file"}),
    ("study", "iterations"): (IterationsConfig, {"config_file"}),
    ("study", "hparams"): (HparamsConfig, {"config_file"}),
}


def test_every_config_field_is_a_flag_and_every_flag_a_field():
    for stage, (config, own) in STAGES.items():
        command = typer.main.get_command(app)
        for name in stage:
            command = command.commands[name]
        options = {p.name for p in command.params}
        assert options - own == set(config.model_fields), stage
        for param in command.params:
            if param.name in config.model_fields:
                field = config.model_fields[param.name]
                assert field.description and field.description in param.help, param.name
                assert param.default in (None, ())  # unset: a --config file's value stays


def test_flags_reach_the_config_and_errors_name_the_flag(tmp_path):
    env = {"FINCH_HOME": str(tmp_path / "home")}
    bad = run_finch("train", "--data", str(tmp_path), "--lr", "-1", env=env)
    assert_one_line_error(bad, 2, "--lr: Input should be greater than 0")
    bad = run_finch("train", "--data", str(tmp_path), "--method", "sft", env=env)
    assert_one_line_error(bad, 2, "--method: Input should be 'lora', 'qlora', 'full' or 'dpo'")
    yaml_file = tmp_path / "train.yaml"
    yaml_file.write_text("lora_rank: 0\n")
    bad = run_finch("train", "--config", str(yaml_file), "--data", str(tmp_path), env=env)
    assert_one_line_error(bad, 2, f"{yaml_file}: lora_rank: Input should be greater than or equal to 1")
    # a flag the config has no default spelling for is still read: the lists and the switches
    bad = run_finch("train", "--data", str(tmp_path), "--report-to", "mlflow,nope", "--no-phased", env=env)
    assert_one_line_error(bad, 2, "--report-to: Input should be 'tensorboard', 'mlflow' or 'wandb'")
