"""The efficacy bench's figures, computed without I/O: per-prompt means over seeds, paired differences with their
standard errors (the ones rrhf eval reports), and which method leads."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from stages.report.paired import PairedDifference as Paired
from stages.report.paired import PerPrompt, paired_difference


def across_seeds(runs: Sequence[PerPrompt]) -> dict[str, float]:
    """Each prompt's mean over the runs (one per seed) that have it: a method's per-prompt figure.

    >>> across_seeds([{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}, {"a": 0.5}])
    {'a': 0.5, 'b': 0.5}
    """
    ids = sorted({pid for run in runs for pid in run})
    return {pid: statistics.fmean(run[pid] for run in runs if pid in run) for pid in ids}


def paired(a: PerPrompt, b: PerPrompt) -> Paired:
    """a against b, paired over the prompts both have (`paired_difference`, which rrhf eval reports too).

    >>> str(paired({"x": 0.9, "y": 0.7, "z": 0.8}, {"x": 0.5, "y": 0.5, "z": 0.5}))
    '+0.300 ± 0.058'
    """
    difference = paired_difference(a, b)
    if difference is None:
        raise ValueError("no prompt is shared")
    return difference


def best(methods: Mapping[str, PerPrompt]) -> str | None:
    """The method with the highest mean reward over prompts (the first listed on a tie); None where there is none.

    >>> best({"a": {"x": 0.2, "y": 0.4}, "b": {"x": 0.5, "y": 0.0}}), best({})
    ('a', None)
    """
    return max(methods, key=lambda name: statistics.fmean(methods[name].values()), default=None)


def within_drift(perplexities: Mapping[str, float], initial: float, bound: float) -> list[str]:
    """The methods whose reference perplexity is at most (1 + bound) times the initial model's.

    >>> within_drift({"a": 10.9, "b": 11.1, "c": 9.0}, initial=10.0, bound=0.10)
    ['a', 'c']
    """
    return [name for name, perplexity in perplexities.items() if drifts_within(perplexity, initial, bound)]


def drift(perplexity: float, initial: float) -> float:
    """A reference perplexity's change relative to the initial model's, as the tables print it.

    >>> round(drift(11.0, 10.0), 6)
    0.1
    """
    return perplexity / initial - 1


def drifts_within(perplexity: float, initial: float, bound: float) -> bool:
    """Whether a reference perplexity is at most (1 + bound) times the initial model's: the target's drift bound.

    >>> drifts_within(10.9, 10.0, 0.10), drifts_within(11.1, 10.0, 0.10)
    (True, False)
    """
    return perplexity <= (1 + bound) * initial


def best_within_drift(methods: Mapping[str, PerPrompt], perplexities: Mapping[str, float], initial: float,
                      bound: float) -> str | None:
    """The method with the highest mean reward among those within the drift bound; None where none is.

    >>> runs = {"a": {"x": 0.9}, "b": {"x": 0.7}, "c": {"x": 0.6}}
    >>> best_within_drift(runs, {"a": 12.0, "b": 10.5, "c": 9.0}, initial=10.0, bound=0.10)
    'b'
    >>> best_within_drift(runs, {"a": 12.0, "b": 11.5, "c": 11.2}, initial=10.0, bound=0.10) is None
    True
    """
    return best({m: methods[m] for m in within_drift({m: perplexities[m] for m in methods}, initial, bound)})


def target_verdict(perplexity: float, initial: float, bound: float, versus_peers: Mapping[str, Paired]) -> bool:
    """The target's rule for one method fixed beforehand: reference perplexity within +bound of the initial model's
    (`drifts_within`) and ahead of every peer by more than 2 s.e.; never met without a peer.

    >>> ahead, level = Paired(mean=0.05, se=0.01, prompts=64), Paired(mean=0.01, se=0.01, prompts=64)
    >>> target_verdict(10.5, 10.0, 0.10, {"trl-dpo": ahead, "trl-simpo": ahead})
    True
    >>> target_verdict(10.5, 10.0, 0.10, {"trl-dpo": ahead, "trl-simpo": level})
    False
    >>> target_verdict(11.2, 10.0, 0.10, {"trl-dpo": ahead}), target_verdict(10.5, 10.0, 0.10, {})
    (False, False)
    """
    return drifts_within(perplexity, initial, bound) and bool(versus_peers) and \
        all(diff.ahead for diff in versus_peers.values())
