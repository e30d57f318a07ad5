"""Tiny randomly initialised Gemma 3, Llama and Qwen2 models with small real tokenizers, built in well under a second.

They have the real architectures, tokenizer algorithms, special tokens and chat formats of finch's model families,
so tests exercise the same code paths as the 270M model (training, merging, GGUF export, llama.cpp) in seconds.
The tokenizers are trained at build time on CORPUS: Gemma's with SentencePiece (BPE with byte fallback, the way
Gemma's own was made), Llama's and Qwen2's with the tokenizers library (byte-level BPE with each family's
pre-tokenizer regex).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from finch.export.gguf_writer import LLAMA3_PRETOKENIZER_REGEX, QWEN2_PRETOKENIZER_REGEX
from finch.models.chat_format import CHATML_TEMPLATE, GEMMA_TEMPLATE, LLAMA3_TEMPLATE

CORPUS = """\
The quick brown fox jumps over the lazy dog. A small model learns from a small set of questions and answers.
Fine-tuning a language model on a laptop takes patience, a good data set, and some care with the learning rate.
What is the capital of France? The capital of France is Paris, a city on the river Seine.
How many legs does a spider have? A spider has eight legs, and an insect has six.
Bees make honey from the nectar of flowers. They tell each other where the flowers are by dancing.
Water boils at 100 degrees Celsius at sea level; on top of a mountain it boils at a lower temperature.
The teacher model writes new questions from a few examples, and the student model learns to answer them.
Photosynthesis turns sunlight, water and carbon dioxide into sugar and oxygen inside the leaves of plants.
In 1969 two astronauts walked on the Moon while a third one waited for them in orbit.
A good answer is short, correct and kind. If you do not know, say that you do not know.
Rivers carry water from the mountains to the sea. Rain fills them again in spring and autumn.
The library opens at nine in the morning and closes at six in the evening, except on Sundays.
Please summarise the following text in two sentences. Then list three facts that it mentions.
Why is the sky blue? Sunlight is scattered by the air, and blue light is scattered the most.
"""

GEMMA_SPECIAL_TOKENS = ["<start_of_turn>", "<end_of_turn>"]  # after <pad>=0, <eos>=1, <bos>=2, <unk>=3, <mask>=4
LLAMA3_SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]
QWEN2_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
HIDDEN_SIZE = 64


def train_gemma_tokenizer(vocab_size: int = 640):
    """A Gemma-style tokenizer: SentencePiece BPE with byte fallback, no dummy prefix, Gemma's special tokens."""
    import sentencepiece as spm
    from tokenizers import AddedToken
    from transformers import GemmaTokenizer
    from transformers.tokenization_utils_base import generate_merges

    user_defined = ["\n", "\n\n"]  # as in Gemma, runs of newlines are their own tokens
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS.splitlines()),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        byte_fallback=True,
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece="<pad>",
        eos_piece="<eos>",
        bos_piece="<bos>",
        unk_piece="<unk>",
        control_symbols=["<mask>", *GEMMA_SPECIAL_TOKENS],
        user_defined_symbols=user_defined,
        normalization_rule_name="identity",
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        split_digits=True,
        num_threads=1,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    vocab = {piece: i for i, piece in enumerate(pieces)}
    # The same conversion transformers applies to Gemma's own tokenizer.model: every split of a piece is a merge.
    tokenizer = GemmaTokenizer(vocab=vocab, merges=generate_merges(vocab), add_bos_token=True)
    tokenizer.add_tokens(
        [
            AddedToken(piece, special=sp.is_control(i), normalized=False)
            for i, piece in enumerate(pieces)
            if sp.is_control(i) or piece in user_defined
        ]
    )
    tokenizer.chat_template = GEMMA_TEMPLATE
    return tokenizer


def train_byte_level_tokenizer(regex: str, special_tokens: list[str], vocab_size: int = 640):
    """Byte-level BPE with a family's pre-tokenizer regex; whole words in the vocab skip the merges (as Llama 3 and
    Qwen2 do), special tokens come after the trained vocabulary."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    def pre_tokenizer():
        return pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(regex), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )

    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    trained.train_from_iterator(CORPUS.splitlines(), trainer)
    tokenizer = Tokenizer(models.BPE(vocab=trained.get_vocab(), merges=_merges(trained), ignore_merges=True))
    tokenizer.pre_tokenizer = pre_tokenizer()
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(special_tokens)
    return tokenizer


def train_llama3_tokenizer(vocab_size: int = 640):
    """A Llama 3 style tokenizer: byte-level BPE with Llama 3's pre-tokenizer and header/turn special tokens."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tokenizer = train_byte_level_tokenizer(LLAMA3_PRETOKENIZER_REGEX, LLAMA3_SPECIAL_TOKENS, vocab_size)
    bos = "<|begin_of_text|>"
    tokenizer.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokenizer.token_to_id(bos))]
            ),
        ]
    )
    hf = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=bos, eos_token="<|end_of_text|>")
    hf.chat_template = LLAMA3_TEMPLATE
    return hf


def train_qwen2_tokenizer(vocab_size: int = 640):
    """A Qwen2 style tokenizer: byte-level BPE with Qwen2's pre-tokenizer (single digits), no BOS, ChatML turns."""
    from tokenizers import normalizers, processors
    from transformers import PreTrainedTokenizerFast

    tokenizer = train_byte_level_tokenizer(QWEN2_PRETOKENIZER_REGEX, QWEN2_SPECIAL_TOKENS, vocab_size)
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    hf = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    hf.chat_template = CHATML_TEMPLATE
    return hf


def _merges(tokenizer) -> list[tuple[str, str]]:
    return [
        tuple(m) if isinstance(m, list) else tuple(m.split(" "))
        for m in json.loads(tokenizer.to_str())["model"]["merges"]
    ]


def tiny_gemma3_config(vocab_size: int):
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=16,
        # One layer of each kind, with a window shorter than the test texts so the sliding mask matters.
        layer_types=["sliding_attention", "full_attention"],
        sliding_window=8,
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
        },
        max_position_embeddings=512,
        rms_norm_eps=1e-6,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        tie_word_embeddings=True,
    )


def tiny_llama_config(vocab_size: int, bos_token_id: int, eos_token_id: int):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        # Llama 3.1 scaling with a short original context, so the scaled frequencies matter in short texts.
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500_000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        tie_word_embeddings=False,  # Gemma's embeddings are tied; this covers a separate output matrix
    )


def tiny_qwen2_config(vocab_size: int, eos_token_id: int, pad_token_id: int):
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        max_position_embeddings=512,
        rms_norm_eps=1e-6,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,  # as the small Qwen2/2.5 models; q/k/v carry biases, which the export must keep
    )


def random_model(config, seed: int):
    """A model with seeded weights large enough that its logits differ clearly between tokens and positions."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    gemma = config.model_type.startswith("gemma")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(".bias"):
                param.normal_(0.0, 0.5)  # Qwen2's q/k/v biases: non-zero, so a dropped bias shows
            elif name.endswith("norm.weight"):
                # Gemma's norms scale by (1 + w), Llama's by w: jitter around a unit gain either way.
                param.normal_(0.0 if gemma else 1.0, 0.1)
            elif "embed_tokens" in name or "lm_head" in name:
                param.normal_(0.0, 1.0 / HIDDEN_SIZE**0.5 * (1.0 if gemma else 4.0))
            else:
                param.normal_(0.0, 1.0 / param.shape[-1] ** 0.5)
    model.eval()
    return model


def save_tiny_model(model, tokenizer, out_dir: Path, end_of_turn: str) -> Path:
    """save_pretrained both, with generation stopping at EOS or at the end of a turn."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    eos_ids = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(end_of_turn)]
    model.generation_config.eos_token_id = sorted(set(eos_ids))
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def write_tiny_gemma3(out_dir: Path, seed: int = 0) -> Path:
    tokenizer = train_gemma_tokenizer()
    model = random_model(tiny_gemma3_config(len(tokenizer)), seed)
    return save_tiny_model(model, tokenizer, Path(out_dir), end_of_turn="<end_of_turn>")


def write_tiny_llama(out_dir: Path, seed: int = 0) -> Path:
    tokenizer = train_llama3_tokenizer()
    config = tiny_llama_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    model = random_model(config, seed)
    return save_tiny_model(model, tokenizer, Path(out_dir), end_of_turn="<|eot_id|>")


def write_tiny_qwen2(out_dir: Path, seed: int = 0) -> Path:
    tokenizer = train_qwen2_tokenizer()
    model = random_model(tiny_qwen2_config(len(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id), seed)
    return save_tiny_model(model, tokenizer, Path(out_dir), end_of_turn="<|im_end|>")


def write_tiny_lora(
    base_dir: Path, run_dir: Path, seed: int = 0, targets=("q_proj", "k_proj", "v_proj", "down_proj"), scale=0.5
):
    """A LoRA adapter on a tiny model with random, non-zero B (a trained adapter is not the identity), saved as a
    finch run directory (run.yaml records the base)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=list(targets)))
    generator = torch.Generator().manual_seed(seed)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            param.data = torch.randn(param.shape, generator=generator) * scale
    peft_model.save_pretrained(run_dir)
    (run_dir / "run.yaml").write_text(f"base_model: {base_dir}\nmethod: lora\nseed: {seed}\n")
    return run_dir
