"""The evaluation report, computed from scores and log-probs without I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from stages.report.paired import PairedDifference


class ModelReport(BaseModel):
    """One model's figures."""

    model: str
    mean_reward: float
    responses: int
    reference_perplexity: float | None = None


class EvalReport(BaseModel):
    """The model, the baseline if any, the model's reward over it paired over prompts, and its win rate."""

    model: ModelReport
    baseline: ModelReport | None = None
    reward_over_baseline: PairedDifference | None = None
    win_rate: float | None = None  # ties count half
    prompts: int


def mean_reward(scores: Mapping[str, Sequence[float]]) -> float:
    """Mean over every response of every prompt."""
    values = [v for per_prompt in scores.values() for v in per_prompt]
    return math.fsum(values) / len(values) if values else float("nan")


def perplexity(logp_sums: Sequence[float], lengths: Sequence[int]) -> float | None:
    """Token-weighted perplexity exp(-sum log p / tokens) of reference responses; None without references."""
    tokens = sum(lengths)
    return math.exp(-math.fsum(logp_sums) / tokens) if tokens else None

