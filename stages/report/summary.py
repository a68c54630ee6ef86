"""Figures about artifacts, computed without I/O: what `rrhf inspect` reports."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable

from pydantic import BaseModel

from stages.contract.schema import Record


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


class Running:
    """Count, mean, variance (Welford's update, stable in one pass) and range of numbers seen one at a time."""

    def __init__(self) -> None:
        self.count, self.mean, self._m2 = 0, 0.0, 0.0
        self.min, self.max = math.inf, -math.inf

    def add(self, value: float) -> None:
        """Take one more number."""
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self._m2 += delta * (value - self.mean)
        self.min, self.max = min(self.min, value), max(self.max, value)

    def stats(self) -> Stats | None:
        """The population statistics so far, or None when no number came."""
        if not self.count:
            return None
        std = math.sqrt(max(self._m2, 0.0) / self.count)
        return Stats(count=self.count, mean=self.mean, std=std, min=self.min, max=self.max)


def stats(values: Iterable[float]) -> Stats | None:
    """Population statistics of `values`, or None when there are none."""
    running = Running()
    for value in values:
        running.add(value)
    return running.stats()


def summarize(records: Iterable[Record], fmt: str | Callable[[], str]) -> Summary:
    """Summarise records of any artifact kind (prompts, samples, scored, ranked or pairs) in one streaming pass;
    `fmt` may be given as a function, asked once the records are read (a stream knows its format then)."""
    records_seen = chat = responses = scored = 0
    sources: Counter[str] = Counter()
    score, per_prompt = Running(), Running()
    named: dict[str, Running] = {}
    pairs: int | None = None
    for record in records:
        records_seen += 1
        chat += isinstance(record.prompt, list)
        per_prompt.add(float(len(record.responses)))
        for response in record.responses:
            responses += 1
            sources[response.source] += 1
            if response.score is not None:
                scored += 1
                score.add(response.score)
            for name, value in (response.scores or {}).items():
                named.setdefault(name, Running()).add(value)
        listed = record.extra.get("pairs")
        if isinstance(listed, list):
            pairs = (pairs or 0) + len(listed)
    fmt = fmt if isinstance(fmt, str) else fmt()
    return Summary(
        format=fmt,
        records=records_seen,
        chat_prompts=chat,
        responses=responses,
        responses_per_prompt=per_prompt.stats() if responses else None,
        sources=dict(sources.most_common()),
        scored=scored,
        unscored=responses - scored,
        score=score.stats(),
        named_scores={name: s for name, running in named.items() if (s := running.stats()) is not None},
        pairs=records_seen if fmt == "trl-preference" else pairs,
    )

