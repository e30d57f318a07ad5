"""An Ollama Modelfile beside a GGUF: its template, stop tokens and sampling defaults."""

from __future__ import annotations

from pathlib import Path

from finch.fileio import atomic_write_text

# Ollama speaks Go templates; these render the same turns as finch's chat templates.
OLLAMA_TEMPLATES = {
    "gemma": (
        "{{- if .System }}<start_of_turn>user\n{{ .System }}\n\n{{ .Prompt }}<end_of_turn>\n"
        "{{- else }}<start_of_turn>user\n{{ .Prompt }}<end_of_turn>\n{{- end }}\n"
        "<start_of_turn>model\n{{ .Response }}<end_of_turn>\n",
        ["<end_of_turn>"],
    ),
    "llama3": (
        "{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
        "<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>",
        ["<|eot_id|>"],
    ),
    "chatml": (
        "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
        "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n{{ .Response }}<|im_end|>\n",
        ["<|im_end|>"],
    ),
}


def chat_family(chat_template: str | None) -> str:
    template = chat_template or ""
    if "<start_of_turn>" in template:
        return "gemma"
    if "<|start_header_id|>" in template:
        return "llama3"
    return "chatml"


def write_modelfile(gguf: Path, chat_template: str | None, temperature: float = 0.7) -> Path:
    template, stops = OLLAMA_TEMPLATES[chat_family(chat_template)]
    lines = [f"FROM ./{gguf.name}", f'TEMPLATE """{template}"""']
    lines += [f'PARAMETER stop "{stop}"' for stop in stops]
    lines += [f"PARAMETER temperature {temperature}", ""]
    path = gguf.parent / "Modelfile"
    atomic_write_text(path, "\n".join(lines))
    return path
