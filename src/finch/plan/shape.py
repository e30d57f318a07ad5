"""A decoder's shape from its config.json alone (no weights): the sizes a memory and time plan needs, the parameter
count, and the LoRA parameters of a target set. So a 70B model can be planned on a laptop."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from finch.errors import UsageError

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class ModelShape:
    model_type: str
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool  # the output head is the token embedding
    qk_norm: bool  # per-head norms on queries and keys (Gemma 3, Qwen 3)

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one decoder layer."""
        attention = self.heads * self.head_dim
        kv = self.kv_heads * self.head_dim
        return {
            "q_proj": (self.hidden, attention),
            "k_proj": (self.hidden, kv),
            "v_proj": (self.hidden, kv),
            "o_proj": (attention, self.hidden),
            "gate_proj": (self.hidden, self.intermediate),
            "up_proj": (self.hidden, self.intermediate),
            "down_proj": (self.intermediate, self.hidden),
        }

    @property
    def layer_matmul_params(self) -> int:
        return sum(i * o for i, o in self.linears().values())

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def params(self) -> int:
        """Every parameter: embedding, layers (linears and norms), final norm, and an untied head."""
        norms = 4 if self.model_type.startswith("gemma") else 2  # Gemma 2/3 norm after attention and MLP too
        per_layer = self.layer_matmul_params + norms * self.hidden + (2 * self.head_dim if self.qk_norm else 0)
        head = 0 if self.tied else self.embedding_params
        return self.embedding_params + self.layers * per_layer + self.hidden + head

    @property
    def matmul_params(self) -> int:
        """Parameters that take part in a matmul per token: every layer's linears and the output head."""
        return self.layers * self.layer_matmul_params + self.embedding_params

    def lora_params(self, targets: list[str] | str, rank: int) -> int:
        """Trainable parameters of LoRA adapters of `rank` on `targets` (names, or all-linear)."""
        return self.layers * sum(
            rank * (i + o) for name, (i, o) in self.linears().items() if name in target_set(targets)
        )


def target_set(targets: list[str] | str) -> set[str]:
    if targets == "all-linear" or targets == ["all-linear"]:
        return set(LINEARS)
    names = [t.strip() for t in (targets.split(",") if isinstance(targets, str) else targets) if t.strip()]
    unknown = [n for n in names if n not in LINEARS]
    if unknown:
        raise UsageError(f"lora_targets: {', '.join(unknown)}: the plan knows {', '.join(LINEARS)} (or all-linear).")
    return set(names)


def read_shape(config_file: Path) -> ModelShape:
    """The shape in a transformers config.json (a multimodal model's text_config when it has one)."""
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"{config_file}: cannot read it as a model config ({e}).") from None
    text = config.get("text_config") or config
    try:
        hidden, heads = int(text["hidden_size"]), int(text["num_attention_heads"])
        return ModelShape(
            model_type=str(text.get("model_type") or config.get("model_type") or "?"),
            vocab=int(text["vocab_size"]),
            hidden=hidden,
            intermediate=int(text["intermediate_size"]),
            layers=int(text["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(text.get("num_key_value_heads") or heads),
            head_dim=int(text.get("head_dim") or hidden // heads),
            tied=bool(
                config.get("tie_word_embeddings", text.get("tie_word_embeddings", True))
            ),  # transformers' default
            qk_norm=str(text.get("model_type", "")).startswith(("gemma3", "qwen3")),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"{config_file}: not a decoder config finch can plan (missing {e}).") from None
