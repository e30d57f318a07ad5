"""Fine-tuning: an explicit LoRA loop over chat data, writing a run directory that is a model reference."""

from finch.train.config import TrainConfig, load_train_config
from finch.train.loop import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "load_train_config", "train"]
