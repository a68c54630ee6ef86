"""The scorer interface and the registry of built-in scorers, imported only when chosen."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Protocol

from rrhf_cli.errors import Location
from rrhf_cli.schema import Record
from stages.score.apply import ScoreFailure
from stages.score.config import ScoreConfig


class Scorer(Protocol):
    """Gives every response of a batch of records a value (or a failure)."""

    def score(self, records: Sequence[Record], locations: Sequence[Location]) -> list[list[float | ScoreFailure]]:
        """One list of values per record, one value per response."""
        ...


# backend name -> "module:callable"; each callable takes the ScoreConfig and returns a Scorer.
REGISTRY: dict[str, str] = {
    "python": "stages.score.python_fn:PythonScorer",
    "logprob": "stages.score.logprob:LogprobScorer",
    "reward-model": "stages.score.reward_model:reward_model_scorer",
    "judge": "stages.score.judge:JudgeScorer",
}


def make_scorer(config: ScoreConfig) -> Scorer:
    """The scorer `config.backend` names, built from the config."""
    module, _, name = REGISTRY[config.backend].partition(":")
    return getattr(importlib.import_module(module), name)(config)
