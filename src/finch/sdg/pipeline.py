"""Pipelines are data: per leaf flavour a list of blocks (YAML), each rendering a prompt template (YAML + Jinja)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from finch.errors import UsageError

PIPELINES = ("simple", "full")
MAX_PER_CALL = 8  # per_fact: a passage dense with facts gets more questions, up to this many in one call
FLAVOURS = ("knowledge", "skills_freeform", "skills_grounded")


def _package_dir() -> Path:
    return Path(str(resources.files("finch") / "data" / "sdg"))


class Block(BaseModel):
    """One step. expand: one call makes `per_call` new items; generate: one call per item fills `field`;
    judge: one call per item rates it 1-5 and keeps it at `threshold` or above (finch.sdg.judge); mcq: one
    multiple-choice question per item for the knowledge benchmark, items pass through unchanged; cover: one call per
    document passage that states key facts no item's answer states yet, asking for a pair per missing fact (items
    pass through, and the new pairs that state a missing fact and nothing the chunk does not are added)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    type: Literal["expand", "generate", "judge", "mcq", "cover"]
    prompt: str
    fields: list[str] = Field(default_factory=list)  # expand: what each new item holds
    field: str | None = None  # generate: the field it fills
    per_call: int = Field(4, ge=1, le=50)
    threshold: float | None = Field(None, ge=1, le=5)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    examples: int = Field(3, ge=0, le=20)  # seed examples shown in the prompt
    stop: list[str] = Field(default_factory=list)  # where an answer ends (a few-shot teacher goes on past it)
    anchors: Literal["question", "answer"] | None = None  # judge: what its known-good/bad anchors spoil
    every_item: bool = False  # expand: ask about every input item (each passage of a document), whatever the target
    # expand on document passages: items asked per key fact the passage states (finch.evaluate.key_facts), at least
    # per_call and at most MAX_PER_CALL; None = per_call for every passage, dense or not
    per_fact: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _needs(self) -> Block:
        needs = {
            "expand": ("fields", self.fields),
            "cover": ("fields", self.fields),
            "generate": ("field", self.field),
            "judge": ("threshold", self.threshold),
        }
        if self.type in needs and not needs[self.type][1]:
            raise ValueError(f"a {self.type} block needs '{needs[self.type][0]}'")
        return self

    def sampling(self, count: int = 1) -> tuple[float, int]:
        """(temperature, max_tokens) for a call asking for `count` items: judges are greedy and short, generators
        sample; an expand call gets room for its items and no more, so a rambling teacher stops early."""
        defaults = {
            "expand": (0.8, min(1536, 200 * count)),
            "generate": (0.7, 384),
            "judge": (0.0, 48),
            "mcq": (0.5, 320),
            "cover": (0.7, min(1536, 160 * count)),
        }
        temperature, max_tokens = defaults[self.type]
        return (
            self.temperature if self.temperature is not None else temperature,
            self.max_tokens or max_tokens,
        )


class Pipeline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    knowledge: list[Block] = Field(min_length=1)
    skills_freeform: list[Block] = Field(min_length=1)
    skills_grounded: list[Block] = Field(min_length=1)
    prompt_dirs: list[Path] = Field(default_factory=list, exclude=True)

    def blocks(self, flavour: str) -> list[Block]:
        return getattr(self, flavour)


def load_pipeline(name_or_path: str) -> Pipeline:
    """`simple`, `full`, or a YAML file of the same shape; prompts are looked up in a `prompts/` folder beside the
    file first, then in finch's own."""
    if name_or_path in PIPELINES:
        path = _package_dir() / "pipelines" / f"{name_or_path}.yaml"
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise UsageError(f"--pipeline {name_or_path}: choose simple or full, or give a pipeline YAML file.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        pipeline = Pipeline.model_validate(data if isinstance(data, dict) else {"knowledge": data})
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"{path}: {where}: {first['msg']}") from None
    pipeline.name = name_or_path if name_or_path in PIPELINES else path.stem
    pipeline.prompt_dirs = [path.parent / "prompts", _package_dir() / "prompts"]
    for flavour in FLAVOURS:
        for block in pipeline.blocks(flavour):
            load_prompt(pipeline, block.prompt)  # fail now, not an hour into a run
    return pipeline


class Prompt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system: str = ""
    user: str
    # The first words of the answer (its format's first label, say "Question:"), written for the teacher: a base
    # model continues a format it is already in, where an instruction alone often leaves it writing anything. Only a
    # teacher that renders its own prompt can be given them (finch.sdg.generate.conversation).
    prefill: str = ""

    def messages(self, **values) -> list[dict[str, str]]:
        system = _render(self.system, values).strip()
        user = _render(self.user, values).strip()
        return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]

    def answer_start(self, **values) -> str:
        """The prefill, rendered; no trailing whitespace, which would split the next word's token."""
        return _render(self.prefill, values).rstrip()


def _render(template: str, values: dict) -> str:
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(keep_trailing_newline=False).from_string(template).render(**values)


_PROMPTS: dict[Path, Prompt] = {}


def load_prompt(pipeline: Pipeline, name: str) -> Prompt:
    for folder in pipeline.prompt_dirs:
        path = folder / f"{name}.yaml"
        if path.is_file():
            if path not in _PROMPTS:
                try:
                    _PROMPTS[path] = Prompt.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
                except (yaml.YAMLError, ValidationError) as e:
                    raise UsageError(
                        f"{path}: not a prompt template (system, user, prefill): {str(e).splitlines()[0]}"
                    ) from None
            return _PROMPTS[path]
    raise UsageError(f"prompt '{name}': no {name}.yaml in {', '.join(str(d) for d in pipeline.prompt_dirs)}")
