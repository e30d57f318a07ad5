"""`finch data generate` as a library call: the settings (GenerateConfig) and the workspace in, a dataset out."""

from __future__ import annotations

import re
from pathlib import Path

from finch.config import Settings
from finch.errors import SettingError
from finch.sdg.config import GenerateConfig
from finch.sdg.dataset import generate_dataset
from finch.sdg.generate import GenerateOptions, Progress
from finch.sdg.pipeline import load_pipeline
from finch.taxonomy.select import select_leaves


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", re.sub(r"^https?://", "", text)).strip("_")


def student_token_counter(model_ref: str, models_dir: Path):
    """Token counts in the student's tokenizer, so chunks fit what the student will be trained on."""
    from transformers import AutoTokenizer

    from finch.models.prepare import prepare_model
    from finch.models.resolve import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(prepare_model(resolve_model(model_ref, models_dir)))
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def default_output(config: GenerateConfig, settings: Settings, pipeline_name: str) -> Path:
    teacher = _slug(config.teacher or settings.config.teacher)
    return settings.path("datasets_dir") / f"{pipeline_name}-{teacher}-x{config.scale}-s{config.seed}"


def run_generate(config: GenerateConfig, settings: Settings, progress: Progress) -> dict:
    """Generate (or resume) the dataset `config` asks for; returns generate_dataset's report."""
    from finch.inference import load_backend

    if config.replay is not None and not config.replay.is_file():
        raise SettingError("generate settings", "replay", f"{config.replay}: no such file.")
    models_dir = settings.path("models_dir")
    pipeline = load_pipeline(config.pipeline)
    taxonomy = config.taxonomy or settings.path("taxonomy_dir")
    documents = settings.locations.cache_dir / "documents"
    leaves = select_leaves(taxonomy, config.leaves, documents, "generate settings")
    options = GenerateOptions(
        output=config.output or default_output(config, settings, pipeline.name),
        scale=config.scale,
        seed=config.seed,
        workers=config.workers,
        chunk_tokens=config.chunk_tokens,
        replay=config.replay,
        replay_ratio=config.replay_ratio,
        limit_per_leaf=config.limit_per_leaf,
    )
    count_tokens = student_token_counter(config.student or settings.config.model, models_dir)
    teacher = config.teacher or settings.config.teacher
    with load_backend(teacher, models_dir, ctx=config.ctx, model_name=config.teacher_model) as backend:
        return generate_dataset(leaves, backend, pipeline, options, count_tokens, progress)
