"""What `rrhf inspect` reports about an artifact, computed without I/O."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

from pydantic import BaseModel

from stages.core.schema import Record


class Stats(BaseModel):
    """Count, mean, standard deviation and range of some numbers."""

    count: int
    mean: float
    std: float
    min: float
    max: float


class Summary(BaseModel):
    """An artifact at a glance."""

    format: str
    records: int
    chat_prompts: int
    responses: int
    responses_per_prompt: Stats | None
    sources: dict[str, int]
    scored: int
    unscored: int
    score: Stats | None
    named_scores: dict[str, Stats]
    pairs: int | None


def stats(values: Sequence[float]) -> Stats | None:
    """Population statistics of `values`, or None when there are none."""
    if not values:
        return None
    mean = math.fsum(values) / len(values)
    var = math.fsum((v - mean) ** 2 for v in values) / len(values)
    return Stats(count=len(values), mean=mean, std=math.sqrt(var), min=min(values), max=max(values))


def summarize(records: Iterable[Record], fmt: str) -> Summary:
    """Summarise records of any artifact kind: prompts, samples, scored, ranked or pairs."""
    records = list(records)
    responses = [r for record in records for r in record.responses]
    scores = [r.score for r in responses if r.score is not None]
    named: dict[str, list[float]] = {}
    for response in responses:
        for name, value in (response.scores or {}).items():
            named.setdefault(name, []).append(value)
    pair_lists = [record.extra.get("pairs") for record in records]
    pairs = (
        sum(len(p) for p in pair_lists if isinstance(p, list)) if any(isinstance(p, list) for p in pair_lists) else None
    )
    if fmt == "trl-preference":
        pairs = len(records)
    return Summary(
        format=fmt,
        records=len(records),
        chat_prompts=sum(1 for record in records if isinstance(record.prompt, list)),
        responses=len(responses),
        responses_per_prompt=stats([float(len(record.responses)) for record in records]) if responses else None,
        sources=dict(Counter(r.source for r in responses).most_common()),
        scored=len(scores),
        unscored=len(responses) - len(scores),
        score=stats(scores),
        named_scores={name: s for name, values in named.items() if (s := stats(values)) is not None},
        pairs=pairs,
    )
