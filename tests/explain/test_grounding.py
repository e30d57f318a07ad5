"""The grounding score: which answer tokens spell a key fact, which prompt tokens are the passage, and the shares."""

from __future__ import annotations

import numpy as np
import pytest

from finch.explain.grounding import fact_rows, grounding, passage_columns


def spans_of(pieces: list[str]) -> list[tuple[int, int]]:
    spans, at = [], 0
    for piece in pieces:
        spans.append((at, at + len(piece)))
        at += len(piece)
    return spans


ANSWER = ["The", " unit", " reads", " every", " 1", "6", " seconds", "."]


def test_fact_rows_are_the_tokens_that_spell_the_fact():
    text = "".join(ANSWER)
    assert fact_rows(text, spans_of(ANSWER), ["16 seconds"]) == [4, 5, 6]
    # Said another way ("16 s"), the number alone still marks its tokens; a fact the answer lacks marks none.
    short = ["Every", " 1", "6", " s"]
    assert fact_rows("".join(short), spans_of(short), ["16 seconds"]) == [1, 2]
    assert fact_rows(text, spans_of(ANSWER), ["E09"]) == []
    assert fact_rows(text, spans_of(ANSWER), ["116 seconds"]) == []  # 16 inside 116 is not 116


def test_passage_columns_are_the_prompt_tokens_of_the_passage():
    prompt = ["<bos>", "Passage", ":", " It", " reads", " every", " 16", " s", ".", " Question", "?"]
    columns = passage_columns("".join(prompt), spans_of(prompt), " It reads every 16 s.")
    assert columns == [3, 4, 5, 6, 7, 8]
    with pytest.raises(ValueError):
        passage_columns("".join(prompt), spans_of(prompt), "not there")


def test_grounding_shares_the_key_tokens_attribution_between_passage_and_the_rest():
    prompt_len, passage = 10, [2, 3, 4, 5, 6]
    attribution = np.zeros((len(ANSWER), prompt_len))
    attribution[:, 8] = 1.0  # most tokens lean on the question
    attribution[4:7, 3] = -3.0  # the fact's tokens lean (negatively counts too) on the passage
    attribution[4:7, 9] = 1.0
    rollout = np.full((len(ANSWER), prompt_len), 0.1)
    rollout[:, 0] = 5.0  # the sink
    score = grounding(
        attribution, rollout, "".join(ANSWER), spans_of(ANSWER), passage, "Every 16 seconds.", "How often?", sink=True
    )
    assert score.facts == ["16 seconds"] and score.key_tokens == [" 1", "6", " seconds"]
    assert score.attribution_share == pytest.approx(3 / 5)
    assert score.rollout_share == pytest.approx(5 / 9)  # the sink left out: 5 passage columns of 9
    assert score.chance == pytest.approx(0.5)
    none = grounding(
        attribution, rollout, "I do not know.", spans_of(["I do not know."]), passage, "Every 16 seconds.", "How often?"
    )
    assert none.key_tokens == [] and none.attribution_share is None
