"""Pure ranking logic: order, de-duplicate, normalise and pair the scored responses of one prompt."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

PairMode = Literal["all", "best-vs-rest", "best-worst", "adjacent"]
Normalize = Literal["none", "zscore", "rank"]


@dataclass
class Ranked:
    """One prompt's outcome: kept response indices best first, their scores, pairs, and what was dropped."""

    order: list[int]
    scores: list[float]
    pairs: list[tuple[int, int]] = field(default_factory=list)
    duplicates: int = 0
    cut_by_top_k: int = 0


def dedupe(texts: Sequence[str], scores: Sequence[float]) -> list[int]:
    """Indices left after dropping exact duplicate texts, keeping each text's highest score (first on ties)."""
    best: dict[str, int] = {}
    for i, text in enumerate(texts):
        if text not in best or scores[i] > scores[best[text]]:
            best[text] = i
    return sorted(best.values())


def sort_best_first(indices: Sequence[int], scores: Sequence[float]) -> list[int]:
    """Indices ordered by descending score; ties keep their input order."""
    return sorted(indices, key=lambda i: -scores[i])


def keep_top_k(order: Sequence[int], k: int) -> list[int]:
    """The k best of a best-first order plus its worst, so the ranking keeps its full range."""
    if len(order) <= k + 1:
        return list(order)
    return [*order[:k], order[-1]]


def normalize(scores: Sequence[float], how: Normalize) -> list[float]:
    """Per-prompt normalisation: `zscore` (mean 0, population std 1) or `rank` (0 for the worst, 1 for the
    best, ties sharing their mean rank); `none` returns the scores unchanged."""
    values = list(scores)
    if how == "none" or len(values) < 2:
        return values
    if how == "zscore":
        mean = math.fsum(values) / len(values)
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))
        return [(v - mean) / std if std > 0 else 0.0 for v in values]
    below = [sum(1 for w in values if w < v) + 0.5 * (sum(1 for w in values if w == v) - 1) for v in values]
    return [b / (len(values) - 1) for b in below]


def make_pairs(scores: Sequence[float], mode: PairMode, min_margin: float = 0.0) -> list[tuple[int, int]]:
    """(better, worse) positions into best-first `scores`, strictly better by at least `min_margin`.

    `all`: every ordered pair; `best-vs-rest`: the best against each other; `best-worst`: best against
    worst; `adjacent`: each response against those of the next lower score level.
    """
    n = len(scores)
    if mode == "all":
        candidates = [(i, j) for i in range(n) for j in range(i + 1, n)]
    elif mode == "best-vs-rest":
        candidates = [(0, j) for j in range(1, n)]
    elif mode == "best-worst":
        candidates = [(0, n - 1)] if n > 1 else []
    elif mode == "adjacent":
        levels = sorted(set(scores), reverse=True)
        next_level = dict(zip(levels, levels[1:], strict=False))
        candidates = [(i, j) for i in range(n) for j in range(i + 1, n) if scores[j] == next_level.get(scores[i])]
    else:
        raise ValueError(f"unknown pair mode '{mode}'")
    return [(i, j) for i, j in candidates if scores[i] > scores[j] and scores[i] - scores[j] >= min_margin]


def subsample(pairs: Sequence[tuple[int, int]], limit: int | None, seed: int, key: str) -> list[tuple[int, int]]:
    """At most `limit` pairs, chosen by a generator seeded from (seed, key) so a prompt's choice does not
    depend on file order or sharding; the chosen pairs keep their order."""
    if limit is None or len(pairs) <= limit:
        return list(pairs)
    rng = random.Random(f"{seed}:{key}")
    keep = sorted(rng.sample(range(len(pairs)), limit))
    return [pairs[i] for i in keep]


def rank_one(
    texts: Sequence[str],
    scores: Sequence[float],
    mode: PairMode = "all",
    min_margin: float = 0.0,
    max_pairs: int | None = None,
    how: Normalize = "none",
    top_k: int | None = None,
    seed: int = 0,
    key: str = "",
) -> Ranked:
    """Rank one prompt's responses end to end; an empty `pairs` means the prompt carries no signal."""
    unique = dedupe(texts, scores)
    order = sort_best_first(unique, scores)
    kept = keep_top_k(order, top_k) if top_k else order
    normalized = normalize([scores[i] for i in kept], how)
    pairs = subsample(make_pairs(normalized, mode, min_margin), max_pairs, seed, key)
    return Ranked(
        order=kept,
        scores=normalized,
        pairs=pairs,
        duplicates=len(texts) - len(unique),
        cut_by_top_k=len(order) - len(kept),
    )
