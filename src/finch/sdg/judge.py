"""A judge's rating read from the teacher's probabilities over the rating digits, calibrated on known answers.

A weak teacher (the built-in 270M base model) rarely writes a parseable "Rating: N", but after the words
"Rating: " nearly all its probability is on the digits, so the expected rating is readable from one forward pass.
Its scale is its own, though: it rates everything about 3. So each judge block first rates anchors whose verdict is
known: seed examples (good) and seed examples spoiled (an answer from another example, an off-topic question). A
rating is then mapped linearly so that the anchors' mean lands on 5 (good) and 1 (bad): a threshold of 4 means
"rated three quarters of the way from the spoiled examples to the real ones". A judge whose anchors are not
apart beyond noise abstains: its items go on unrated, and the report says so. Teachers without probabilities
(HTTP servers) are judged on their text (finch.sdg.parse.rating).
"""

from __future__ import annotations

import math
from typing import Any

ANSWER_PREFIX = "Rating: "
RATINGS = ("1", "2", "3", "4", "5")
MIN_MASS = 0.5  # below this share of probability on the digits the judge was not answering with a rating
ANCHORS = 4  # good and bad anchors each, per judge block and leaf
MIN_SEPARATION = 2.0  # how many standard errors the good anchors' mean must lie above the bad ones' for a verdict
OFF_TOPIC = (
    "Write a short poem about autumn leaves.",
    "What is your favourite film, and why?",
    "How many legs does a spider have?",
    "Tell me a joke about penguins.",
)


def expected_rating(probs: dict[str, float]) -> float | None:
    """The mean rating under the judge's distribution over the digits; None when the digits hold too little of it."""
    mass = sum(probs.get(r, 0.0) for r in RATINGS)
    if mass < MIN_MASS:
        return None
    return sum(int(r) * probs.get(r, 0.0) for r in RATINGS) / mass


def calibrate(value: float, good: float, bad: float) -> float:
    """`value` on the scale where the good anchors' mean is 5 and the bad anchors' is 1 (good > bad), clipped."""
    return round(min(5.0, max(1.0, 1 + 4 * (value - bad) / (good - bad))), 3)


def anchors(examples: list[dict[str, str]], shown: list[dict[str, str]], judges: str) -> list[tuple[str, dict]]:
    """(verdict, item) pairs: seed examples not shown in the judge's prompt, as they are (good) and spoiled (bad).
    `judges` is the field the block rates: a question is spoiled by an off-topic question, an answer by the answer
    of another seed example."""
    unseen = [e for e in examples if e not in shown] or examples
    picked = unseen[:ANCHORS]
    found: list[tuple[str, dict]] = []
    for k, example in enumerate(picked):
        good = _as_item(example)
        found.append(("good", good))
        if judges == "question":
            found.append(("bad", {**good, "question": OFF_TOPIC[k % len(OFF_TOPIC)]}))
            continue
        start = examples.index(example)
        others = examples[start + 1 :] + examples[:start]
        other = next((e["answer"] for e in others if e["answer"].strip() != example["answer"].strip()), None)
        if other is not None:
            found.append(("bad", {**good, "answer": other}))
    return found


def _as_item(example: dict[str, str]) -> dict[str, Any]:
    item = dict(example)
    if "context" in item:
        item["chunk"] = item["context"]  # knowledge judges read the excerpt as `chunk`
    return item


def anchor_scale(records: list[dict]) -> tuple[float, float] | None:
    """(good, bad) mean expected ratings of the anchors' journal records, or None when the judge cannot tell them
    apart: fewer than two rated on a side, or the good mean less than MIN_SEPARATION standard errors above the bad."""
    sides = []
    for verdict in ("good", "bad"):
        values = [r["rating"] for r in records if r.get("anchor") == verdict and r.get("rating") is not None]
        if len(values) < 2:
            return None
        mean = sum(values) / len(values)
        variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
        sides.append((mean, variance / len(values)))
    (good, good_var), (bad, bad_var) = sides
    error = math.sqrt(good_var + bad_var)
    if good <= bad or good - bad < MIN_SEPARATION * error:
        return None
    return good, bad
