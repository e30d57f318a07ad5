"""A conversation as the trainer sees it: the student's chat template rendered, tokenized, and each token marked
trained (a label: part of an assistant turn) or masked. The ids and labels are finch.train.data's own, so what is
shown is what `finch train` learns from; only the token texts are added, cut from the rendered text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from finch.inference.base import PromptFormat
from finch.train.data import IGNORE, chat_renderer, tokenize_conversation


@dataclass(frozen=True)
class TokenPiece:
    text: str  # the characters of the rendered conversation this token stands for (may be "" for a byte token)
    token_id: int
    trained: bool


def student_chat_tokenizer(model_ref: str, models_dir: Path) -> tuple[object, PromptFormat]:
    """The tokenizer of a model reference and its chat rendering, as `finch train` loads them."""
    from transformers import AutoConfig, AutoTokenizer

    from finch.models.prepare import prepare_model
    from finch.models.resolve import resolve_model

    hf_dir = prepare_model(resolve_model(model_ref, models_dir))
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    return tokenizer, chat_renderer(tokenizer, AutoConfig.from_pretrained(hf_dir).model_type)


def rendered_pieces(tokenizer, render: PromptFormat, messages: list[dict[str, str]]) -> list[TokenPiece]:
    """Every token of the rendered conversation, in order, with its text and whether it is trained on. The texts
    join to the rendered conversation; several byte tokens of one character share it (the last one holds it)."""
    sample = tokenize_conversation(tokenizer, render, messages)
    text = render.render(messages, add_generation_prompt=False)
    starts = [
        start for start, _ in tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    ]
    starts[0] = 0  # text before the first token's offset (a space the tokenizer folds into it) belongs to it
    ends = [*starts[1:], len(text)]
    return [
        TokenPiece(text[start:end], token_id, label != IGNORE)
        for start, end, token_id, label in zip(starts, ends, sample.input_ids, sample.labels)
    ]
