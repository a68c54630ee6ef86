"""What one artifact contributes to a prompt's card: its responses with ranks, best and worst, and its pairs.

Pure functions over records; no I/O. A card entry is compact JSON for the page's script: a response is
`[text, source, score, rank, named scores]`, with a sixth element, 1, when the token limit cut the response.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from stages.contract.schema import Message, Record, Response, best_index

PAIR_SOURCES = ("chosen", "rejected")


def plain_prompt(prompt: str | Sequence[Message]) -> Any:
    """A record's prompt as JSON: the string, or its turns as {role, content, ...} objects."""
    return prompt if isinstance(prompt, str) else [message.model_dump() for message in prompt]


def competition_ranks(scores: Sequence[float | None]) -> list[int | None]:
    """1 for the best score, ties sharing the better rank (1, 1, 3); None for an unscored response."""
    known = [s for s in scores if s is not None]
    return [None if s is None else 1 + sum(other > s for other in known) for s in scores]


def named_scores(response: Response) -> dict[str, float]:
    """The scores a response carries besides `score`: each named scorer's, and the raw score `rank --normalize`
    kept."""
    named = dict(response.scores or {})
    raw = response.extra.get("raw_score")
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        named["raw"] = float(raw)
    return named


def scorers_disagree(responses: Sequence[Response]) -> bool:
    """Whether two named scorers (a reward model and a judge, say) would pick different best responses."""
    names = {name for r in responses for name in (r.scores or {})}
    if len(names) < 2:
        return False
    best = set()
    for name in names:
        values = [(r.scores or {}).get(name) for r in responses]
        if any(v is None for v in values):
            continue
        best.add(best_index(values))  # type: ignore[arg-type]
    return len(best) > 1


def entry(responses: Sequence[Response], pairs: Iterable[Sequence[int]] = (), dropped: str | None = None
          ) -> dict[str, Any]:
    """One artifact's part of a card: responses with ranks, the mean score, its pairs and why rank dropped it."""
    scores = [r.score for r in responses]
    ranks = competition_ranks(scores)
    out: dict[str, Any] = {
        "r": [[r.text, r.source, r.score, rank, named_scores(r) or None, *(() if r.ended else (1,))]
              for r, rank in zip(responses, ranks, strict=True)],
    }
    known = [s for s in scores if s is not None]
    if known:
        out["m"] = math.fsum(known) / len(known)
    if pairs := [[int(better), int(worse)] for better, worse in pairs]:
        out["p"] = pairs
    if dropped:
        out["d"] = dropped
    if scorers_disagree(responses):
        out["x"] = 1
    return out


def record_pairs(record: Record) -> list[list[int]]:
    """The (better, worse) pairs a listwise ranked record carries, checked against its responses."""
    pairs = record.extra.get("pairs") or []
    count = len(record.responses)
    return [list(p) for p in pairs
            if isinstance(p, list) and len(p) == 2 and all(isinstance(i, int) and 0 <= i < count for i in p)]


def drop_reason(scores: Sequence[float | None], min_margin: float) -> str:
    """Why `rrhf rank` kept no pair of a prompt with these scores."""
    if any(s is None for s in scores) or len(set(scores)) < 2:
        return "dropped by rank: no ranking signal (every response has the same score)"
    return f"dropped by rank: no pair of responses scores at least {min_margin:g} apart"


class PairGroups:
    """Preference rows (`rank --format pairs`, or TRL preference data) regrouped into one card per prompt: each
    distinct response once, and a pair from each row's chosen to its rejected."""

    def __init__(self) -> None:
        self.prompts: dict[str, Any] = {}
        self._responses: dict[str, list[Response]] = {}
        self._index: dict[str, dict[str, int]] = {}
        self._pairs: dict[str, list[list[int]]] = {}

    def add(self, record: Record) -> None:
        """Add one preference row, under its `prompt_id` when it carries one (rank writes it), else its id."""
        key = str(record.extra.get("prompt_id") or record.id)
        if key not in self.prompts:
            self.prompts[key] = plain_prompt(record.prompt)
            self._responses[key], self._index[key], self._pairs[key] = [], {}, []
        index = self._index[key]
        positions = []
        for response in record.responses:
            if response.text not in index:
                index[response.text] = len(self._responses[key])
                self._responses[key].append(response)
            positions.append(index[response.text])
        sources = [r.source for r in record.responses]
        if len(positions) == 2 and sources == list(PAIR_SOURCES) and positions[0] != positions[1]:
            self._pairs[key].append(positions)

    def entries(self) -> Iterable[tuple[str, Any, dict[str, Any]]]:
        """(prompt id, prompt, entry) for each prompt, in the order first seen."""
        for key, prompt in self.prompts.items():
            yield key, prompt, entry(self._responses[key], self._pairs[key])
