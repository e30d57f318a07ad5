"""The quickstart's tiny dataset: every seed question of the sample taxonomy as a chat row finch can train on."""

from __future__ import annotations

from transformers import AutoTokenizer

from finch.taxonomy.check import check_taxonomy, sample_taxonomy_dir
from finch.train.data import chat_renderer, read_rows, tokenize_split
from finch.train.seed_data import write_seed_dataset


def test_seed_dataset_holds_every_seed_pair_and_tokenizes(tmp_path, tiny_gemma3_dir):
    report = check_taxonomy([sample_taxonomy_dir()], skip_documents=True)
    expected = sum(result.example_count for result in report.leaves)
    folder = write_seed_dataset(report, tmp_path / "seeds")
    rows = read_rows(folder / "train.jsonl")
    assert len(rows) == expected > 10
    assert all([m["role"] for m in row] == ["user", "assistant"] and row[1]["content"] for row in rows)
    assert any("Kestrel Vane K-230 was released on 14 September 2021" in row[1]["content"] for row in rows)
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma3_dir)
    split = tokenize_split(tokenizer, chat_renderer(tokenizer, "gemma3_text"), rows, 512, "seeds")
    assert len(split.samples) == expected
