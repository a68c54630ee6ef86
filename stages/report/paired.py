"""One model's rewards against another's on the same prompts, computed without I/O: the mean per-prompt
difference with its standard error, and the win rate. `rrhf eval`, `rrhf view` and the efficacy bench report
these."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

from pydantic import BaseModel

PerPrompt = Mapping[str, float]  # prompt id -> that prompt's mean reward


class PairedDifference(BaseModel):
    """Mean of the per-prompt differences a - b over the prompts both have, and the standard error of that mean
    (None for fewer than two prompts)."""

    mean: float
    se: float | None
    prompts: int

    @property
    def ahead(self) -> bool:
        """Whether a leads b by more than two standard errors."""
        return self.se is not None and self.mean > 2 * self.se

    def __str__(self) -> str:
        return f"{self.mean:+.3f}" + ("" if self.se is None else f" ± {self.se:.3f}")


def prompt_means(scores: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Each prompt's mean reward over its answers; prompts without a scored answer are left out.

    >>> prompt_means({"a": [1.0, 0.0], "b": []})
    {'a': 0.5}
    """
    return {pid: math.fsum(values) / len(values) for pid, values in scores.items() if values}


def paired_difference(a: PerPrompt, b: PerPrompt) -> PairedDifference | None:
    """a against b, paired over the prompts both have: the mean difference and the standard error of that mean
    (the sample standard deviation of the differences over the square root of their count); None where no prompt
    is shared. Differences 0.4, 0.2, 0.3: mean 0.3, standard deviation 0.1, standard error 0.1 / sqrt(3) = 0.058.

    >>> str(paired_difference({"x": 0.9, "y": 0.7, "z": 0.8}, {"x": 0.5, "y": 0.5, "z": 0.5, "w": 0.0}))
    '+0.300 ± 0.058'
    >>> str(paired_difference({"x": 0.9}, {"x": 0.5})), paired_difference({"x": 0.9}, {"y": 0.5})
    ('+0.400', None)
    """
    shared = sorted(a.keys() & b.keys())
    if not shared:
        return None
    diffs = [a[pid] - b[pid] for pid in shared]
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else None
    return PairedDifference(mean=statistics.fmean(diffs), se=se, prompts=len(diffs))


def win_rate(model: PerPrompt, baseline: PerPrompt) -> float:
    """Share of the prompts both have where the model's mean reward beats the baseline's; a tie counts half.

    >>> win_rate(prompt_means({"a": [1.0, 0.0], "b": [0.2], "c": [0.9]}), prompt_means({"a": [0.5], "b": [0.3]}))
    0.25
    """
    shared = [pid for pid in model if pid in baseline]
    if not shared:
        return float("nan")
    wins = (1.0 if model[p] > baseline[p] else 0.5 if model[p] == baseline[p] else 0.0 for p in shared)
    return math.fsum(wins) / len(shared)
