"""Alpaca, ShareGPT and prompt/completion rows import to the very conversations a person would write by hand: the
trainer's labels over them agree token by token, and its own reader accepts the files."""

from __future__ import annotations

import json

import pytest
from transformers import AutoConfig, AutoTokenizer

from finch.train.data import IGNORE, chat_renderer, data_files, read_rows_with_kind, tokenize_conversation
from finch.train.rendered import rendered_pieces
from tests.data_import.helpers import read_jsonl, run_import, write_jsonl

SYSTEM = "You answer questions about small animals in one sentence."
SHAREGPT_TURNS = [
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("And an insect?", "An insect has six legs."),
    ("Which of them is bigger?", "It depends on the species; some spiders are larger than most insects."),
]
ALPACA = [
    {"instruction": "What is the capital of France?", "input": "", "output": "The capital of France is Paris."},
    {
        "instruction": "Summarise the text in one sentence.",
        "input": "Bees make honey from the nectar of flowers. They tell each other where the flowers are by dancing.",
        "output": "Bees make honey from nectar and dance to show where flowers are.",
        "system": "Be brief.",
    },
]
PROMPT_COMPLETION = [
    {"prompt": "Why is the sky blue?", "completion": " Sunlight is scattered by the air, and blue the most."},
    {"prompt": "At what temperature does water boil at sea level?", "completion": "At 100 degrees Celsius."},
]


def hand_written(case: str) -> list[list[dict[str, str]]]:
    """The conversations a person would write for each case's rows, as messages."""
    if case == "alpaca":
        return [
            [
                {"role": "user", "content": "What is the capital of France?"},
                {"role": "assistant", "content": "The capital of France is Paris."},
            ],
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": f"{ALPACA[1]['instruction']}\n\n{ALPACA[1]['input']}"},
                {"role": "assistant", "content": ALPACA[1]["output"]},
            ],
        ]
    if case == "sharegpt":
        turns = [{"role": "system", "content": SYSTEM}]
        for question, answer in SHAREGPT_TURNS:
            turns += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        return [turns]
    return [
        [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["completion"].strip()}]
        for row in PROMPT_COMPLETION
    ]


def write_case(case: str, folder):
    if case == "alpaca":  # Alpaca's own release is one JSON array, pretty-printed
        path = folder / "alpaca_data.json"
        path.write_text(json.dumps(ALPACA, indent=2), encoding="utf-8")
        return path
    if case == "sharegpt":
        conversations = [{"from": "system", "value": SYSTEM}]
        for question, answer in SHAREGPT_TURNS:
            conversations += [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
        return write_jsonl(folder / "sharegpt.jsonl", [{"id": "x1", "conversations": conversations}])
    return write_jsonl(folder / "openai.jsonl", PROMPT_COMPLETION)


@pytest.fixture(scope="module")
def gemma(tiny_gemma3_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma3_dir)
    return tokenizer, chat_renderer(tokenizer, AutoConfig.from_pretrained(tiny_gemma3_dir).model_type)


@pytest.mark.parametrize("case", ["alpaca", "sharegpt", "prompt-completion"])
def test_imported_rows_train_exactly_like_hand_written_ones(case, gemma, tmp_path):
    tokenizer, render = gemma
    report, folder = run_import(tmp_path, write_case(case, tmp_path))
    assert report["formats"] == {case: len(hand_written(case))}

    imported = [row["messages"] for row in read_jsonl(folder / "train.jsonl")]
    assert len(imported) == len(hand_written(case))
    for mine, theirs in zip(imported, hand_written(case)):
        shown = rendered_pieces(tokenizer, render, mine)
        expected = tokenize_conversation(tokenizer, render, theirs)  # the trainer's labels on the hand-written row
        assert [p.token_id for p in shown] == expected.input_ids
        assert [p.trained for p in shown] == [label != IGNORE for label in expected.labels]
        assert sum(p.trained for p in shown) > 0

    if case == "alpaca":  # each row is named by the line its object opens on
        lines = (tmp_path / "alpaca_data.json").read_text().splitlines()
        opening = [number for number, line in enumerate(lines, 1) if line.strip() == "{"]
        sources = [row["metadata"]["source"] for row in read_jsonl(folder / "train.jsonl")]
        assert sources == [f"{tmp_path / 'alpaca_data.json'}:{number}" for number in opening] and opening[1] > 2

    # the trainer reads the folder as it is: train.jsonl, no test split asked for
    train, test = data_files(folder)
    assert test is None
    assert [messages for messages, _ in read_rows_with_kind(train)] == imported


def test_the_rendered_view_is_the_rendered_text_and_marks_the_answers(gemma):
    tokenizer, render = gemma
    conversation = hand_written("sharegpt")[0]
    pieces = rendered_pieces(tokenizer, render, conversation)
    assert "".join(p.text for p in pieces) == render.render(conversation, add_generation_prompt=False)
    runs, current = [], ""
    for piece in pieces:
        if piece.trained:
            current += piece.text
        elif current:
            runs, current = [*runs, current], ""
    runs += [current] if current else []
    assert runs == [f"{answer}<end_of_turn>\n" for _, answer in SHAREGPT_TURNS]


def test_csv_and_line_numbers(tmp_path):
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text(
        'prompt,completion,system\n"What is 2+2?",4,\n"A question\nover two lines","An answer",Be kind.\n',
        encoding="utf-8",
    )
    report, folder = run_import(tmp_path, csv_file)
    rows = read_jsonl(folder / "train.jsonl")
    assert [row["messages"] for row in rows] == [
        [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}],
        [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "A question\nover two lines"},
            {"role": "assistant", "content": "An answer"},
        ],
    ]
    assert [row["metadata"]["source"] for row in rows] == [f"{csv_file}:2", f"{csv_file}:3"]
    assert report["files"][0]["container"] == "csv" and report["formats"] == {"prompt-completion": 2}
