"""The quickstart's tiny dataset: every seed question of the sample taxonomy as a chat row finch can train on or
holds out for the base-vs-tuned comparison."""

from __future__ import annotations

from transformers import AutoTokenizer

from finch.taxonomy.check import check_taxonomy, sample_taxonomy_dir
from finch.taxonomy.seed_rows import write_seed_dataset
from finch.train.data import chat_renderer, read_rows, tokenize_split


def test_seed_dataset_holds_every_seed_pair_and_tokenizes(tmp_path, tiny_gemma3_dir):
    report = check_taxonomy([sample_taxonomy_dir()], skip_documents=True)
    folder = write_seed_dataset(report, tmp_path / "seeds")
    rows, held_out = read_rows(folder / "train.jsonl"), read_rows(folder / "test.jsonl")
    # every 5th seed pair of a leaf (at least one per leaf) is held out, none of them is also trained on
    counts = [result.example_count for result in report.leaves]
    assert len(held_out) == sum(max(1, n // 5) for n in counts) and len(rows) + len(held_out) == sum(counts)
    assert not {row[0]["content"] for row in rows} & {row[0]["content"] for row in held_out}
    expected = len(rows)
    assert all([m["role"] for m in row] == ["user", "assistant"] and row[1]["content"] for row in rows)
    assert any("Kestrel Vane K-230 was released on 14 September 2021" in row[1]["content"] for row in rows)
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma3_dir)
    split = tokenize_split(tokenizer, chat_renderer(tokenizer, "gemma3_text"), rows, 512, "seeds")
    assert len(split.samples) == expected
