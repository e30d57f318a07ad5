"""Chat rows in, token ids and completion-only labels out.

A row is `{"messages": [{"role", "content"}...], "metadata": {...}}`. The chat template renders the whole
conversation once; only the characters the template emits for assistant turns (content and end-of-turn marker)
become labels, so the loss never trains the model to write the user's side.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from finch.errors import SettingError, UsageError
from finch.inference.base import PromptFormat
from finch.train.config import TRAIN_SETTINGS, TrainConfig

IGNORE = -100
ROLES = ("system", "user", "assistant")


@dataclass
class Sample:
    input_ids: list[int]
    labels: list[int]  # IGNORE where the token is not part of an assistant turn

    @property
    def n_labels(self) -> int:
        return sum(label != IGNORE for label in self.labels)


@dataclass
class Split:
    samples: list[Sample]
    skipped_too_long: int = 0
    skipped_no_labels: int = 0
    warnings: list[str] = field(default_factory=list)


def data_files(data: Path) -> tuple[Path, Path | None]:
    """(train, test-or-None) for a dataset directory or a single JSONL file."""
    if not data.exists():
        raise SettingError(TRAIN_SETTINGS, "data", f"{data}: no such file or directory.")
    if data.is_file():
        return data, None
    train = data / "train.jsonl"
    if not train.is_file():
        raise SettingError(
            TRAIN_SETTINGS, "data", f"{data}: no train.jsonl in that directory; pass a dataset dir or a JSONL file."
        )
    test = data / "test.jsonl"
    return train, test if test.is_file() else None


def read_rows(path: Path) -> list[list[dict[str, str]]]:
    """The conversations of a JSONL file, each checked; the first bad row stops with its line number."""
    return [messages for messages, _ in read_rows_with_kind(path)]


def read_rows_with_kind(path: Path) -> list[tuple[list[dict[str, str]], str | None]]:
    """(conversation, metadata.kind) per row: kind says knowledge, skill or replay where the data generator set it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8 JSONL.") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UsageError(f"{where}: invalid JSON ({e.msg}); each line must be one JSON object.") from None
        metadata = row.get("metadata") if isinstance(row, dict) else None
        kind = metadata.get("kind") if isinstance(metadata, dict) else None
        rows.append((_check_row(row, where), kind if isinstance(kind, str) else None))
    if not rows:
        raise UsageError(f'{path}: no rows; a dataset needs at least one {{"messages": [...]}} line.')
    return rows


PHASES = ("knowledge", "skills")  # phased training's order


def row_phase(kind: str | None) -> str:
    """The phase of phased training a row belongs to: knowledge rows first, then the skills (and replay) rows."""
    return "knowledge" if kind == "knowledge" else "skills"


def replay_rows(path: Path, count: int, seed: int) -> list[list[dict[str, str]]]:
    """`count` conversations from a replay buffer, a seeded sample (with repeats only when it holds fewer)."""
    if not path.is_file():
        raise SettingError(TRAIN_SETTINGS, "replay", f"{path}: no such file; pass a JSONL file of chat rows.")
    pool = read_rows(path)
    rng = random.Random(seed)
    return rng.sample(pool, count) if count <= len(pool) else rng.choices(pool, k=count)


def _check_row(row: object, where: str) -> list[dict[str, str]]:
    messages = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(messages, list) or not messages:
        raise UsageError(f'{where}: expected {{"messages": [{{"role": ..., "content": ...}}, ...]}}.')
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise UsageError(f"{where}: messages[{i}]: role must be one of {', '.join(ROLES)}.")
        if not isinstance(message.get("content"), str):
            raise UsageError(f"{where}: messages[{i}]: content must be a string.")
        checked.append({"role": message["role"], "content": message["content"]})
    if not any(m["role"] == "assistant" for m in checked):
        raise UsageError(f"{where}: no assistant message, so nothing to learn from; add the answer.")
    return checked


def chat_renderer(tokenizer, model_type: str) -> PromptFormat:
    """The tokenizer's chat template, or the family's native turn format for base models without one."""
    from finch.models.chat_format import native_chat_format

    template = tokenizer.chat_template or native_chat_format(model_type, tokenizer.get_vocab()).template
    return PromptFormat(template, tokenizer.bos_token or "", tokenizer.eos_token or "")


def assistant_spans(render: PromptFormat, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character ranges of its assistant turns (after each turn's header)."""
    text = render.render(messages, add_generation_prompt=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(render.render(messages[:i], add_generation_prompt=True))
        turn = render.render(messages[: i + 1], add_generation_prompt=False)
        end = len(turn)
        if not text.startswith(turn) or start > end:
            raise UsageError("the chat template does not render conversations incrementally; finch cannot mask it.")
        spans.append((start, end))
    return text, spans


def tokenize_conversation(tokenizer, render: PromptFormat, messages: list[dict[str, str]]) -> Sample:
    """Ids of the rendered chat (the template brings the BOS) with labels on tokens inside assistant spans."""
    text, spans = assistant_spans(render, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    labels = [IGNORE] * len(ids)
    for index, (start, end) in enumerate(encoded["offset_mapping"]):
        if end > start and any(lo <= start < hi for lo, hi in spans):
            labels[index] = ids[index]
    return Sample(ids, labels)


def tokenize_split(tokenizer, render: PromptFormat, conversations, max_seq_len: int, name: str) -> Split:
    """Tokenize every conversation; too long or label-free ones are counted and skipped, never cut silently."""
    split = Split([])
    for row, messages in enumerate(conversations, 1):
        try:
            sample = tokenize_conversation(tokenizer, render, messages)
        except UsageError as e:
            raise UsageError(f"{name}: row {row}: {e}") from None
        if len(sample.input_ids) > max_seq_len:
            split.skipped_too_long += 1
        elif sample.n_labels == 0:
            split.skipped_no_labels += 1
        else:
            split.samples.append(sample)
    if split.skipped_too_long:
        split.warnings.append(
            f"{name}: skipped {split.skipped_too_long} of {len(conversations)} samples longer than "
            f"--max-seq-len {max_seq_len} tokens"
        )
    if split.skipped_no_labels:
        split.warnings.append(f"{name}: skipped {split.skipped_no_labels} samples whose answers are empty")
    if not split.samples:
        raise UsageError(
            f"{name}: none of the {len(conversations)} samples fits in --max-seq-len {max_seq_len} tokens "
            "with a non-empty answer; raise --max-seq-len or shorten the samples."
        )
    return split


def file_hash(*paths: Path | None) -> str:
    digest = hashlib.sha256()
    for path in paths:
        if path is not None:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class TrainData:
    render: PromptFormat
    pad_id: int
    train: Split
    test: Split | None
    train_file: Path
    test_file: Path | None
    extra_files: tuple[Path, ...] = ()  # other inputs the data depends on (a replay buffer), for the data hash


def load_data(config: TrainConfig, hf_dir: Path) -> TrainData:
    """Rows rendered with the model's chat template, labels only on assistant turns, too-long samples skipped;
    the replay buffer, if any, mixed in."""
    return next(iter(_tokenized(config, hf_dir, phased=False).values()))


def load_phase_data(config: TrainConfig, hf_dir: Path) -> dict[str, TrainData]:
    """The data of each phase of phased training that has rows: knowledge, then skills (every other kind, with the
    replay buffer mixed in). Each row is tokenized once; the test split stays whole and is shared, so the eval
    losses of both phases compare."""
    return _tokenized(config, hf_dir, phased=True)


def _tokenized(config: TrainConfig, hf_dir: Path, phased: bool) -> dict[str | None, TrainData]:
    from transformers import AutoConfig, AutoTokenizer

    assert config.data is not None
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    render = chat_renderer(tokenizer, AutoConfig.from_pretrained(hf_dir).model_type)
    train_file, test_file = data_files(config.data)
    rows_by_phase: dict[str | None, list] = {}
    for messages, kind in read_rows_with_kind(train_file):
        rows_by_phase.setdefault(row_phase(kind) if phased else None, []).append(messages)
    replaying = config.replay is not None and config.replay_ratio > 0
    if phased and replaying:
        rows_by_phase.setdefault("skills", [])  # a replay buffer alone makes a skills phase
    if not rows_by_phase:
        raise SettingError(TRAIN_SETTINGS, "data", f"{config.data}: no rows to train on.")
    test_split = None
    if test_file is not None:
        test_split = tokenize_split(tokenizer, render, read_rows(test_file), config.max_seq_len, str(test_file))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    all_rows = sum(len(rows) for rows in rows_by_phase.values())
    data = {}
    for phase in sorted(rows_by_phase, key=lambda p: PHASES.index(p) if p else 0):
        rows, extra_files = rows_by_phase[phase], ()
        if replaying and phase != "knowledge":
            assert config.replay is not None
            # the ratio is to the phase's own rows; a skills phase of replay alone takes it to all the rows
            count = round(config.replay_ratio * (len(rows) or all_rows))
            rows = rows + replay_rows(config.replay, count, config.seed)
            extra_files = (config.replay,)
        if not rows:
            raise SettingError(
                TRAIN_SETTINGS, "data", f"{config.data}: no {phase or ''} rows to train on (metadata.kind)."
            )
        name = f"{train_file} ({phase} rows)" if phase else str(train_file)
        train_split = tokenize_split(tokenizer, render, rows, config.max_seq_len, name)
        data[phase] = TrainData(render, pad_id, train_split, test_split, train_file, test_file, extra_files)
    # the samples are token ids now: the tokenizer (a 262k-token vocabulary's tables, ~0.3 GB) is not kept
    return data


def save_train_data(data: TrainData, path: Path) -> None:
    """Tokenized data for the processes of a multi-process run to read instead of tokenizing again: token ids as
    flat safetensors arrays, everything else as metadata."""
    import torch
    from safetensors.torch import save_file

    tensors, meta = (
        {},
        {
            "render": json.dumps([data.render.template, data.render.bos_token, data.render.eos_token]),
            "pad_id": str(data.pad_id),
            "files": json.dumps([str(data.train_file), str(data.test_file) if data.test_file else None]),
            "extra_files": json.dumps([str(p) for p in data.extra_files]),
        },
    )
    for name, split in (("train", data.train), ("test", data.test)):
        if split is None:
            continue
        tensors[f"{name}.input_ids"] = torch.tensor([t for s in split.samples for t in s.input_ids], dtype=torch.int64)
        tensors[f"{name}.labels"] = torch.tensor([t for s in split.samples for t in s.labels], dtype=torch.int64)
        tensors[f"{name}.lengths"] = torch.tensor([len(s.input_ids) for s in split.samples], dtype=torch.int64)
        meta[name] = json.dumps([split.skipped_too_long, split.skipped_no_labels, split.warnings])
    save_file(tensors, str(path), metadata=meta)


def read_train_data(path: Path) -> TrainData:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta, names = f.metadata(), set(f.keys())
        splits: dict[str, Split] = {}
        for name in ("train", "test"):
            if f"{name}.lengths" not in names:
                continue
            ids, labels = f.get_tensor(f"{name}.input_ids").tolist(), f.get_tensor(f"{name}.labels").tolist()
            samples, at = [], 0
            for length in f.get_tensor(f"{name}.lengths").tolist():
                samples.append(Sample(ids[at : at + length], labels[at : at + length]))
                at += length
            too_long, no_labels, warnings = json.loads(meta[name])
            splits[name] = Split(samples, too_long, no_labels, warnings)
    train_file, test_file = json.loads(meta["files"])
    return TrainData(
        PromptFormat(*json.loads(meta["render"])),
        int(meta["pad_id"]),
        splits["train"],
        splits.get("test"),
        Path(train_file),
        Path(test_file) if test_file else None,
        tuple(Path(p) for p in json.loads(meta["extra_files"])),
    )
