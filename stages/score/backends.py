"""What a scorer is (a Protocol), and building the one a run names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from stages.contract.errors import Location
from stages.contract.schema import Record
from stages.runtime.runs import Failure
from stages.score.config import ScoreConfig
from stages.score.registry import SCORERS


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
