"""Token-weighted perplexity with Hugging Face's sliding-window convention.

Windows of `max_length` tokens advance by `stride`; each window scores only the tokens the previous one did not, with
the rest of the window as context. The result is exp(total negative log-likelihood / tokens scored), so a long text
weighs by its tokens, not by its windows. See https://huggingface.co/docs/transformers/perplexity.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from finch.errors import UsageError


def load_texts(path: Path, limit: int | None = None) -> list[str]:
    file = path / "test.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise UsageError(f"{file}: no such file; pass --data with a .txt/.md file, a JSONL file or a dataset folder.")
    if file.suffix != ".jsonl":
        return [file.read_text(encoding="utf-8")]
    texts = []
    for line in file.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            texts.append("\n".join(m["content"] for m in row["messages"]) if "messages" in row else row["text"])
            if limit is not None and len(texts) >= limit:
                break
    return texts


def perplexity(model, tokenizer, texts: list[str], max_length: int = 512, stride: int = 256) -> dict[str, float]:
    import torch

    ids = tokenizer("\n\n".join(texts), return_tensors="pt").input_ids
    total = ids.size(1)
    nll, scored, previous_end = 0.0, 0, 0
    for begin in range(0, total, stride):
        end = min(begin + max_length, total)
        window = ids[:, begin:end]
        labels = window.clone()
        labels[:, : -(end - previous_end)] = -100  # context only: already scored by an earlier window
        with torch.no_grad():
            loss = model(window, labels=labels).loss
        n = int((labels[:, 1:] != -100).sum())  # the model predicts each label from the tokens before it
        if n:
            nll += float(loss) * n
            scored += n
        previous_end = end
        if end == total:
            break
    if not scored:
        raise UsageError("the text is too short to score: it needs at least two tokens.")
    return {"perplexity": math.exp(nll / scored), "nll_per_token": nll / scored, "tokens": scored}
