"""Exact and near-duplicate removal: a small MinHash with LSH banding over word 3-grams (no extra dependency)."""

from __future__ import annotations

import hashlib
import random
import re

_PRIME = (1 << 61) - 1
_MAX = (1 << 32) - 1


def normalise(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


class NearDuplicates:
    """Remembers texts; `seen(text)` says whether it matches one already added, exactly or at an estimated
    Jaccard similarity of its word 3-grams of at least `threshold`."""

    def __init__(self, threshold: float = 0.8, permutations: int = 64, bands: int = 16):
        rng = random.Random(1234)
        self.threshold = threshold
        self.rows = permutations // bands
        self.bands = bands
        self.perms = [(rng.randrange(1, _PRIME), rng.randrange(0, _PRIME)) for _ in range(permutations)]
        self.exact: set[str] = set()
        self.buckets: list[dict[tuple, list[list[int]]]] = [{} for _ in range(bands)]

    def signature(self, text: str) -> list[int]:
        words = normalise(text).split()
        grams = {" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))}
        hashes = [int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little") for g in grams]
        return [min(((a * h + b) % _PRIME) & _MAX for h in hashes) for a, b in self.perms]

    def check(self, text: str) -> str | None:
        """'exact' or 'near' when `text` duplicates a remembered one, else None."""
        key = normalise(text)
        if key in self.exact:
            return "exact"
        signature = self.signature(text)
        for band, buckets in enumerate(self.buckets):
            part = tuple(signature[band * self.rows : (band + 1) * self.rows])
            for other in buckets.get(part, ()):
                if sum(x == y for x, y in zip(signature, other)) / len(signature) >= self.threshold:
                    return "near"
        return None

    def add(self, text: str) -> None:
        self.exact.add(normalise(text))
        signature = self.signature(text)
        for band, buckets in enumerate(self.buckets):
            buckets.setdefault(tuple(signature[band * self.rows : (band + 1) * self.rows]), []).append(signature)
