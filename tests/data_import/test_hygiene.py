"""Duplicates, the test split, contamination against it and against the taxonomy's held-out questions, the token
length histogram, and the folder: a dataset `finch data list|show` and `finch train` take as it is."""

from __future__ import annotations

import pytest
from transformers import AutoConfig, AutoTokenizer

from finch.errors import UsageError
from finch.importing.contamination import NGRAM
from finch.sdg import list_datasets, load_dataset
from finch.sdg.dedup import normalise
from finch.taxonomy import check_taxonomy, sample_taxonomy_dir, seed_rows, split_seed_rows
from finch.train.data import chat_renderer, tokenize_conversation
from tests.data_import.helpers import read_jsonl, run_import, write_jsonl

ANIMALS = ["spider", "beetle", "heron", "otter", "badger", "marten", "lizard", "salmon", "raven", "hedgehog"]


def animal_rows(extra: str = "") -> list[dict]:
    """Ten rows that share no run of words worth a match: each about its own animal."""
    return [
        {"prompt": f"Tell me about the {animal}{extra}.", "completion": f"The {animal} ({k}) is a fine {animal}."}
        for k, animal in enumerate(ANIMALS)
    ]


def test_exact_and_near_duplicates_are_dropped_and_named(tmp_path):
    story = "The lighthouse keeper climbed the one hundred and twelve steps every evening to light the great lamp"
    rows = animal_rows() + [
        {"prompt": "Tell me about the SPIDER.", "completion": "The  spider (0) is a fine spider!"},  # same words
        {"prompt": "Tell me a story.", "completion": story + ", even in the storms of winter."},
        {"prompt": "Tell me a story.", "completion": story + ", even in the storms of autumn."},  # one word apart
    ]
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    report, folder = run_import(tmp_path, path)
    assert report["duplicates"] == {"exact": 1, "near": 1}
    dropped = {entry["source"]: entry["reason"] for entry in report["skipped"] if entry["step"] == "duplicate"}
    assert dropped == {
        f"{path}:11": f"exact duplicate of {path}:1",
        f"{path}:13": "near duplicate of an earlier row (80% of its word 3-grams or more)",
    }
    assert len(read_jsonl(folder / "train.jsonl")) == 11

    kept, _ = run_import(tmp_path, path, dedup=False, output=tmp_path / "all")
    assert kept["duplicates"] is None and kept["train"] == 13


def test_training_rows_that_repeat_a_test_row_are_dropped(tmp_path):
    shared = "the old mill by the river grinds oats every second tuesday of the month"
    rows = animal_rows()
    for k in range(5):  # half the rows hold the same long sentence: the split puts some on each side
        rows[2 * k]["prompt"] = f"Tell me about the {ANIMALS[2 * k]}: {shared}."
    report, folder = run_import(tmp_path, write_jsonl(tmp_path / "rows.jsonl", rows), test_ratio=0.5, seed=7)
    train, test = read_jsonl(folder / "train.jsonl"), read_jsonl(folder / "test.jsonl")
    assert len(test) == 5 and any(shared in r["messages"][0]["content"] for r in test)
    assert not any(shared in r["messages"][0]["content"] for r in train)
    contaminated = [entry for entry in report["skipped"] if entry["step"] == "contaminated"]
    assert len(contaminated) == 5 - sum(shared in r["messages"][0]["content"] for r in test) > 0
    assert report["contamination"]["test"] == len(contaminated) and len(train) == 5 - len(contaminated)
    assert all("repeats test row" in entry["reason"] for entry in contaminated)
    # what is left shares no run of NGRAM words with the test rows
    test_grams = {g for r in test for m in r["messages"] for g in _grams(m["content"])}
    assert not [g for r in train for m in r["messages"] for g in _grams(m["content"]) if g in test_grams]


def _grams(text: str) -> set[tuple[str, ...]]:
    words = normalise(text).split()
    return {tuple(words[i : i + NGRAM]) for i in range(len(words) - NGRAM + 1)}


def test_held_out_seed_questions_of_the_taxonomy_are_never_trained_on(tmp_path):
    taxonomy = sample_taxonomy_dir()
    shown, held = split_seed_rows(seed_rows(check_taxonomy([taxonomy], skip_documents=True)))
    held_question = next(r for r in held if r["metadata"]["kind"] == "knowledge")["messages"][0]["content"]
    shown_question = next(r for r in shown if r["metadata"]["kind"] == "knowledge")["messages"][0]["content"]
    rows = animal_rows() + [
        {"prompt": f"Quick one: {held_question.lower()} Thanks!", "completion": "Every 16 seconds."},
        {"prompt": shown_question, "completion": "A shown seed question may be trained on."},
    ]
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    report, folder = run_import(tmp_path, path, taxonomy=taxonomy)
    assert report["contamination"]["held_out"] == 1
    assert report["contamination"]["held_out_questions"] == len(held)
    [entry] = [entry for entry in report["skipped"] if entry["step"] == "contaminated"]
    assert entry["source"] == f"{path}:11"
    assert "held-out question of knowledge->products->kestrel_vane_k230" in entry["reason"]
    prompts = [r["messages"][0]["content"] for r in read_jsonl(folder / "train.jsonl")]
    assert shown_question in prompts and len(prompts) == 11

    kept, _ = run_import(tmp_path, path, taxonomy=taxonomy, decontaminate=False, output=tmp_path / "all")
    assert kept["contamination"] is None and kept["train"] == 12


def test_token_lengths_in_the_students_tokens(tmp_path, tiny_gemma3_dir):
    rows = animal_rows() + [{"prompt": "Say a lot.", "completion": " ".join(["The river runs to the sea."] * 60)}]
    report, folder = run_import(tmp_path, write_jsonl(tmp_path / "rows.jsonl", rows), model=str(tiny_gemma3_dir))
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma3_dir)
    render = chat_renderer(tokenizer, AutoConfig.from_pretrained(tiny_gemma3_dir).model_type)
    samples = [tokenize_conversation(tokenizer, render, r["messages"]) for r in read_jsonl(folder / "train.jsonl")]
    lengths = sorted(len(s.input_ids) for s in samples)

    summary = report["lengths"]
    assert summary["model"] == str(tiny_gemma3_dir) and summary["rows"] == 11
    assert summary["max"] == lengths[-1] > 256 and summary["median"] == lengths[5]
    assert summary["trained_tokens"] == sum(s.n_labels for s in samples)
    bounds = [0, 64, 128, 256, 512, 1024, 2048, 4096, 8192, None]
    assert summary["bins"] == [
        {"up_to": high, "rows": sum(low < n and (high is None or n <= high) for n in lengths)}
        for low, high in zip(bounds, bounds[1:])
    ]
    assert summary["over_max_seq_len"] == sum(n > 1024 for n in lengths) and summary["max_seq_len"] == 1024
    assert (folder / "lengths.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # imported again without a model: no stale plot is left to mislead
    run_import(tmp_path, tmp_path / "rows.jsonl")
    assert not (folder / "lengths.png").exists()


def test_the_folder_is_a_dataset_finch_lists_and_shows(tmp_path):
    datasets = tmp_path / "datasets"
    path = write_jsonl(tmp_path / "rows.jsonl", animal_rows())
    report, folder = run_import(tmp_path, path, test_ratio=0.2, output=datasets / "animals")
    [listed] = list_datasets(datasets)
    assert (listed["name"], listed["pipeline"], listed["train"], listed["test"]) == ("animals", "import", 8, 2)
    shown = load_dataset(folder, samples=2)
    assert shown["report"] == report and len(shown["samples"]) == 2
    row = shown["samples"][0]
    assert row["metadata"]["kind"] == "imported" and row["metadata"]["source"].startswith(f"{path}:")

    # a re-import without a test split removes the old one: finch train would read it
    run_import(tmp_path, path, test_ratio=0.0, output=folder)
    assert not (folder / "test.jsonl").exists()


def test_a_generated_dataset_is_not_overwritten_and_a_missing_taxonomy_is_named(tmp_path):
    folder = tmp_path / "generated"
    folder.mkdir()
    (folder / "report.json").write_text('{"pipeline": "full", "teacher": "t"}')
    path = write_jsonl(tmp_path / "rows.jsonl", animal_rows())
    with pytest.raises(UsageError, match="holds a dataset `finch data generate` made"):
        run_import(tmp_path, path, output=folder)
    with pytest.raises(UsageError, match="--taxonomy .*nowhere: no such folder"):
        run_import(tmp_path, path, taxonomy=tmp_path / "nowhere")
    assert not (tmp_path / "out").exists()
