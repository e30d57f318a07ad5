"""Fine-tuning: an explicit LoRA loop over chat data, writing a run directory that is a model reference."""

from finch.train.config import TrainConfig, load_train_config

__all__ = ["TrainConfig", "TrainResult", "load_train_config", "train"]


def __getattr__(name: str):
    # The loop imports torch (~1.7 s on 2 cores); every CLI command reads TrainConfig for its plan, few train.
    if name in ("TrainResult", "train"):
        from finch.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'finch.train' has no attribute {name!r}")
