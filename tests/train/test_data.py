"""Completion-only labels, checked token by token, and bad data turned into one clear error."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from finch.errors import UsageError
from finch.train import TrainConfig
from finch.train.data import (
    IGNORE,
    chat_renderer,
    load_data,
    load_phase_data,
    read_rows,
    read_train_data,
    save_train_data,
    tokenize_conversation,
    tokenize_split,
)
from tests.train.datasets import chat_rows, write_dataset, write_jsonl
from tests.train.test_phased import write_phased_dataset

CONVERSATION = [
    {"role": "system", "content": "Answer in one sentence."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
    {"role": "user", "content": "How many legs does a spider have?"},
    {"role": "assistant", "content": "A spider has eight legs."},
]


@pytest.fixture(params=["gemma", "llama"])
def tokenizer_and_turn_end(request, tiny_gemma3_dir, tiny_llama_dir):
    if request.param == "gemma":
        return AutoTokenizer.from_pretrained(tiny_gemma3_dir), "gemma3_text", "<end_of_turn>"
    return AutoTokenizer.from_pretrained(tiny_llama_dir), "llama", "<|eot_id|>"


def test_labels_cover_exactly_the_assistant_turns(tokenizer_and_turn_end):
    tokenizer, model_type, turn_end = tokenizer_and_turn_end
    render = chat_renderer(tokenizer, model_type)
    sample = tokenize_conversation(tokenizer, render, CONVERSATION)

    # Expected labels from an independent route: token counts of the rendered prefixes.
    def count(messages, generation_prompt=False):
        text = render.render(messages, add_generation_prompt=generation_prompt)
        return len(tokenizer(text, add_special_tokens=False).input_ids)

    expected = [IGNORE] * len(sample.input_ids)
    for i, message in enumerate(CONVERSATION):
        if message["role"] == "assistant":
            for t in range(count(CONVERSATION[:i], True), count(CONVERSATION[: i + 1])):
                expected[t] = sample.input_ids[t]
    assert sample.labels == expected
    assert sample.input_ids == tokenizer.apply_chat_template(CONVERSATION, tokenize=True, return_dict=False)

    # And read back as text: the labelled runs are the answers, each with its end-of-turn marker, nothing else.
    runs, current = [], []
    for token, label in zip(sample.input_ids, sample.labels):
        if label != IGNORE:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    texts = [tokenizer.decode(run) for run in runs]
    assert [t.strip().removesuffix(turn_end) for t in texts] == [
        "The capital of France is Paris.",
        "A spider has eight legs.",
    ]
    assert all(turn_end in t for t in texts)
    assert tokenizer.convert_tokens_to_ids(turn_end) in [sample.labels[i] for i in range(len(sample.labels))]
    unlabelled = tokenizer.decode([t for t, lab in zip(sample.input_ids, sample.labels) if lab == IGNORE])
    assert "France?" in unlabelled and "Answer in one sentence." in unlabelled and "Paris" not in unlabelled


def test_too_long_samples_are_counted_and_skipped(tiny_gemma3_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma3_dir)
    render = chat_renderer(tokenizer, "gemma3_text")
    short = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    long = [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "Hello."}]
    split = tokenize_split(tokenizer, render, [short, long, short], max_seq_len=64, name="train.jsonl")
    assert len(split.samples) == 2 and split.skipped_too_long == 1
    assert "skipped 1 of 3 samples longer than --max-seq-len 64" in split.warnings[0]
    with pytest.raises(UsageError, match="none of the 1 samples fits in --max-seq-len 64"):
        tokenize_split(tokenizer, render, [long], max_seq_len=64, name="train.jsonl")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no rows"),
        ("{not json\n", r"train.jsonl:1: invalid JSON"),
        ('{"messages": []}\n', r"train.jsonl:1: expected \{\"messages\""),
        ('{"messages": [{"role": "bot", "content": "x"}]}\n', r"train.jsonl:1: messages\[0\]: role must be one of"),
        ('{"messages": [{"role": "user", "content": 3}]}\n', r"messages\[0\]: content must be a string"),
        ('{"messages": [{"role": "user", "content": "hi"}]}\n', "no assistant message"),
    ],
)
def test_bad_rows_name_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "train.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match=message):
        read_rows(path)


def test_template_errors_name_the_row(tmp_path, tiny_gemma3_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma3_dir)
    bad = {"messages": [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]}
    path = write_jsonl(tmp_path / "train.jsonl", [bad])
    with pytest.raises(UsageError, match="row 1: chat template: Conversation roles must alternate"):
        tokenize_split(tokenizer, chat_renderer(tokenizer, "gemma3_text"), read_rows(path), 64, "train.jsonl")


def test_tokenized_data_reads_back_exactly(tmp_path, tiny_gemma3_dir):
    # what the processes of a multi-process run read instead of tokenizing the data again
    config = TrainConfig(data=write_dataset(tmp_path / "data"), max_seq_len=48)
    data = load_data(config, tiny_gemma3_dir)
    assert data.train.skipped_too_long and data.test  # the counts and warnings travel too
    save_train_data(data, tmp_path / "tokenized.safetensors")
    assert read_train_data(tmp_path / "tokenized.safetensors") == data


def test_phases_split_the_rows_once_and_share_the_test_split(tmp_path, tiny_gemma3_dir):
    folder = write_phased_dataset(tmp_path / "data")
    replay = folder / "replay.jsonl"
    config = TrainConfig(data=folder, phased=True, max_seq_len=128, replay=replay, replay_ratio=0.5)
    phases = load_phase_data(config, tiny_gemma3_dir)
    assert list(phases) == ["knowledge", "skills"]
    assert len(phases["knowledge"].train.samples) == 12
    assert len(phases["skills"].train.samples) == 9 + round(0.5 * 9)  # the replay rows join the skills phase only
    assert phases["knowledge"].test is phases["skills"].test and len(phases["knowledge"].test.samples) == 7
    assert phases["knowledge"].extra_files == () and phases["skills"].extra_files == (replay,)


def test_a_replay_buffer_alone_makes_a_skills_phase(tmp_path, tiny_gemma3_dir):
    folder = write_dataset(tmp_path / "data", n_train=12)  # knowledge rows only
    replay = write_jsonl(tmp_path / "replay.jsonl", chat_rows(8, seed=2))
    config = TrainConfig(data=folder, phased=True, max_seq_len=128, replay=replay, replay_ratio=0.5)
    phases = load_phase_data(config, tiny_gemma3_dir)
    assert {name: len(d.train.samples) for name, d in phases.items()} == {"knowledge": 12, "skills": 6}
