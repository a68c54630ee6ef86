"""The scorers by name; a scorer's code is imported only when picked."""

from __future__ import annotations

from dataclasses import dataclass

from stages.runtime.registry import Registry


@dataclass(frozen=True)
class ScorerSpec:
    """A registered scorer: its factory (`module:attribute`, called with the ScoreConfig) and what it needs."""

    factory: str
    needs_model: bool = True


SCORERS: Registry[ScorerSpec] = Registry("scorer")
SCORERS.register("reward-model", ScorerSpec("stages.score.reward_model:reward_model_scorer"))
SCORERS.register("judge", ScorerSpec("stages.score.judge:JudgeScorer"))
SCORERS.register("logprob", ScorerSpec("stages.score.logprob:logprob_scorer"))
SCORERS.register("python", ScorerSpec("stages.score.python_fn:PythonScorer", needs_model=False))
