"""What a scorer is (a Protocol), and building the one a run names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from stages.contract.errors import Location
from stages.contract.schema import Record
from stages.runtime.runs import Failure
from stages.score.config import ScoreConfig
from stages.score.registry import SCORERS

T = TypeVar("T")


class Scorer(Protocol):
    """Gives every response of a batch of records a value (or a failure)."""

    def score(self, records: Sequence[Record], locations: Sequence[Location]) -> list[list[float | Failure]]:
        """One list of values per record, one value per response."""
        ...

    def close(self) -> None:
        """Release the model, the engine or the connections the scorer holds."""
        ...


def make_scorer(config: ScoreConfig) -> Scorer:
    """The scorer `config.scorer` names, built from the config."""
    return SCORERS.create(config.scorer, config)


def per_record(flat: Sequence[T], sizes: Iterable[int]) -> list[list[T]]:
    """A flat list of every response's value cut back into one row per record, of the records' sizes.

    >>> per_record([1, 2, 3], [2, 0, 1])
    [[1, 2], [], [3]]
    """
    rows: list[list[T]] = []
    start = 0
    for size in sizes:
        rows.append(list(flat[start : start + size]))
        start += size
    return rows
