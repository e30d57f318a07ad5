"""Training rows that contain a test question: an n-gram overlap on normalised words (lowercased word characters,
as finch.sdg.dedup reads text), the check GPT-3 and later reports ran with 8- to 13-grams.

A reference text (a test row's turn, a held-out seed question) contaminates a training row when one of its
`NGRAM`-word runs appears in one of the row's turns. A reference shorter than that contaminates a row that holds
all of it, from `MIN_WORDS` words up: a shorter one ("What is E09?") is too common to tell a copy from a chance."""

from __future__ import annotations

from dataclasses import dataclass

from finch.sdg.dedup import normalise

NGRAM = 8
MIN_WORDS = 5


@dataclass(frozen=True)
class Reference:
    text: str
    source: str  # what it is, for the report: "test row FILE:LINE", "held-out question of LEAF"
    kind: str  # test | held_out


class OverlapIndex:
    """The n-grams (and whole short texts) of reference texts; `match(texts)` names the first one a text repeats."""

    def __init__(self, references: list[Reference]):
        self.grams: dict[tuple[str, ...], Reference] = {}
        self.short: dict[tuple[str, ...], Reference] = {}  # whole references of MIN_WORDS to NGRAM - 1 words
        for reference in references:
            words = tuple(normalise(reference.text).split())
            if len(words) >= NGRAM:
                for gram in _grams(words, NGRAM):
                    self.grams.setdefault(gram, reference)
            elif len(words) >= MIN_WORDS:
                self.short.setdefault(words, reference)
        self.short_lengths = sorted({len(words) for words in self.short})

    def match(self, texts: list[str]) -> tuple[Reference, str] | None:
        """(the reference, the words shared) for the first overlap found in any of `texts`, else None."""
        for text in texts:
            words = tuple(normalise(text).split())
            for gram in _grams(words, NGRAM):
                if gram in self.grams:
                    return self.grams[gram], " ".join(gram)
            for length in self.short_lengths:
                for gram in _grams(words, length):
                    if gram in self.short:
                        return self.short[gram], " ".join(gram)
        return None


def _grams(words: tuple[str, ...], n: int):
    return (words[i : i + n] for i in range(len(words) - n + 1))
