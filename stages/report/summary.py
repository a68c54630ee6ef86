"""Figures about artifacts, computed without I/O: what `rrhf inspect` reports."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable

from pydantic import BaseModel

from stages.contract.schema import Record, best_index


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
    source_scores: dict[str, Stats]  # each source's scores
    best_sources: dict[str, int]  # prompts whose best response (the first of the top score) is each source's
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


def best_source(record: Record) -> str | None:
    """The source of a record's best response, the first of the top score as `rrhf train` picks it; None where a
    response is unscored or every score ties (no best).

    >>> best_source(Record.model_validate({"id": "1", "prompt": "p", "responses": [
    ...     {"text": "a", "source": "policy", "score": 0.2}, {"text": "b", "source": "gpt4", "score": 0.9},
    ...     {"text": "c", "source": "policy", "score": 0.9}]}))
    'gpt4'
    """
    scores = [r.score for r in record.responses]
    if not scores or None in scores or min(scores) == max(scores):  # type: ignore[type-var]
        return None
    return record.responses[best_index(scores)].source  # type: ignore[arg-type]


def summarize(records: Iterable[Record], fmt: str | Callable[[], str]) -> Summary:
    """Summarise records of any artifact kind (prompts, samples, scored, ranked or pairs) in one streaming pass;
    `fmt` may be given as a function, asked once the records are read (a stream knows its format then)."""
    records_seen = chat = responses = scored = 0
    sources: Counter[str] = Counter()
    best: Counter[str] = Counter()
    by_source: dict[str, Running] = {}
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
                by_source.setdefault(response.source, Running()).add(response.score)
            for name, value in (response.scores or {}).items():
                named.setdefault(name, Running()).add(value)
        if (winner := best_source(record)) is not None:
            best[winner] += 1
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
        source_scores={name: s for name, running in by_source.items() if (s := running.stats()) is not None},
        best_sources=dict(best),
        scored=scored,
        unscored=responses - scored,
        score=score.stats(),
        named_scores={name: s for name, running in named.items() if (s := running.stats()) is not None},
        pairs=records_seen if fmt == "trl-preference" else pairs,
    )

