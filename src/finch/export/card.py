"""A README model card beside every export: what it is, where it came from, how to run it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from finch import __version__
from finch.fileio import atomic_write_text


def _human(n: int) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"


def write_model_card(
    out_dir: Path,
    *,
    name: str,
    fmt: str,
    quant: str | None,
    base: str,
    adapter: Path | None,
    files: list[Path],
    notes: list[str] = (),
) -> Path:
    lines = [f"# {name}", "", f"Exported by finch {__version__} as `{fmt}`" + (f" ({quant})." if quant else "."), ""]
    lines += ["## Lineage", "", f"- base model: `{base}`"]
    run = {}
    if adapter is not None:
        lines.append(f"- LoRA adapter: `{adapter}`")
        run_yaml = adapter / "run.yaml"
        if run_yaml.is_file():
            run = yaml.safe_load(run_yaml.read_text(encoding="utf-8")) or {}
        adapter_config = adapter / "adapter_config.json"
        if adapter_config.is_file():
            config = json.loads(adapter_config.read_text(encoding="utf-8"))
            lines.append(
                f"- LoRA rank {config.get('r')}, alpha {config.get('lora_alpha')}, "
                f"targets {config.get('target_modules')}"
            )
    for key in ("data", "data_hash", "method", "max_steps", "epochs", "lr", "learning_rate", "seed"):
        if key in run:
            lines.append(f"- {key}: `{run[key]}`")
    evals = adapter / "eval" / "report.json" if adapter is not None else None
    if evals is not None and evals.is_file():
        lines += ["", "## Evaluation", "", "```json", evals.read_text(encoding="utf-8").strip(), "```"]
    if notes:
        lines += ["", "## Export notes", ""] + [f"- {note}" for note in notes]
    lines += ["", "## Files", ""]
    lines += [f"- `{f.name}` ({_human(f.stat().st_size)})" for f in files if f.is_file()]
    lines += ["", "## Use", ""]
    gguf = next((f for f in files if f.suffix == ".gguf"), None)
    if fmt == "gguf" and gguf is not None:
        lines += [
            f"- finch: `finch chat --model {gguf}` or `finch serve --model {gguf}`",
            f"- llama.cpp: `llama-cli -m {gguf.name} -cnv`",
            f"- Ollama: `ollama create {name} -f Modelfile && ollama run {name}`",
        ]
    elif fmt == "gguf-lora" and gguf is not None:
        lines += [f"- llama.cpp: `llama-cli -m BASE.gguf --lora {gguf.name}`"]
    else:
        lines += [
            f"- finch: `finch chat --model {out_dir}`",
            f"- transformers: `AutoModelForCausalLM.from_pretrained('{out_dir}')`",
            f"- vLLM: `vllm serve {out_dir}`",
        ]
    path = out_dir / "README.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
