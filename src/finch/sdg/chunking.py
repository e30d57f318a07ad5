"""Token-aware chunking of knowledge documents: pieces that fit a budget in the student's tokens, with overlap so
a fact cut at a boundary is whole in one of the two chunks."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

CountTokens = Callable[[str], int]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def approximate_tokens(text: str) -> int:
    """A stand-in when no tokenizer is at hand: about 4/3 tokens per word for English."""
    return (len(text.split()) * 4 + 2) // 3


def _split(text: str, count: CountTokens, max_tokens: int, level: int = 0) -> list[tuple[str, str]]:
    """(unit, separator before it) pairs: paragraphs, then lines (tables, lists), then sentences, then word runs,
    going down a level only where a piece is longer than the budget."""
    splitters = [
        (lambda t: re.split(r"\n\s*\n", t), "\n\n"),
        (lambda t: t.split("\n"), "\n"),
        (lambda t: _SENTENCE_END.split(t), " "),
    ]
    if level == len(splitters):
        units, piece = [], []
        for word in text.split():
            if piece and count(" ".join([*piece, word])) > max_tokens:
                units.append((" ".join(piece), " "))
                piece = []
            piece.append(word)
        return units + ([(" ".join(piece), " ")] if piece else [])
    split, separator = splitters[level]
    units = []
    for part in split(text):
        part = part.strip()
        if not part:
            continue
        if count(part) <= max_tokens:
            units.append((part, separator))
        else:
            inner = _split(part, count, max_tokens, level + 1)
            units += [(inner[0][0], separator), *inner[1:]]
    return units


def _join(units: list[tuple[str, str]]) -> str:
    return "".join((sep if i else "") + text for i, (text, sep) in enumerate(units))


def chunk_text(text: str, count: CountTokens, max_tokens: int = 400, overlap: int = 48) -> list[str]:
    """Greedy packing of paragraphs/lines/sentences into chunks of at most `max_tokens`; each chunk after the
    first starts with the previous chunk's last units worth at most `overlap` tokens."""
    if overlap >= max_tokens:
        raise ValueError("overlap must be smaller than max_tokens")
    chunks: list[str] = []
    current: list[tuple[str, str]] = []
    fresh = 0  # units in `current` that no earlier chunk holds
    for unit in _split(text, count, max_tokens):
        if current and count(_join([*current, unit])) > max_tokens:
            chunks.append(_join(current))
            current, fresh = _tail(current, unit, count, overlap, max_tokens), 0
        current.append(unit)
        fresh += 1
    if current and fresh:
        chunks.append(_join(current))
    return chunks


def chunk_pages(
    pages: Sequence[str], count: CountTokens, max_tokens: int = 400, overlap: int = 48
) -> list[tuple[int, str]]:
    """(page number from 1, chunk) for a paged document (a PDF): each page is chunked on its own, so a chunk never
    runs on into the next page, whose first lines may belong elsewhere (a running header, a footnote, a new chapter),
    and every chunk knows the one page it comes from. Pages without text have no chunks."""
    return [
        (number, chunk)
        for number, page in enumerate(pages, 1)
        for chunk in chunk_text(page, count, max_tokens, overlap)
    ]


def _tail(units: list[tuple[str, str]], following: tuple[str, str], count: CountTokens, overlap: int, max_tokens: int):
    """The last sentences (or lines) of `units` worth at most `overlap` tokens, as units to start the next chunk."""
    pieces: list[tuple[str, str]] = []
    for text, separator in reversed(units):
        sentences = [p for line in text.split("\n") for p in _SENTENCE_END.split(line) if p.strip()]
        for k, sentence in enumerate(reversed(sentences)):
            joiner = separator if k == len(sentences) - 1 else ("\n" if "\n" in text else " ")
            candidate = [(sentence.strip(), joiner), *pieces]
            if count(_join(candidate)) > overlap or count(_join([*candidate, following])) > max_tokens:
                return pieces
            pieces = candidate
    return pieces
