"""The logprob scorer: the length-normalised log-probability of each response under a causal LM.

An RRHF-trained model is also a reward model (the paper's point): `rrhf score --scorer logprob --model out/`.
"""

from __future__ import annotations

from collections.abc import Sequence

from stages.contract.errors import Location
from stages.contract.schema import Record
from stages.lm.policy import PolicyLogprobs
from stages.runtime.runs import Failure
from stages.score.backends import Scorer
from stages.score.config import ScoreConfig


def logprob_scorer(config: ScoreConfig) -> Scorer:
    """The logprob scorer on the engine `config.engine` names."""
    if config.engine == "vllm":
        from stages.score.logprob_vllm import VllmLogprobScorer

        return VllmLogprobScorer(config)
    return LogprobScorer(config)


class LogprobScorer:
    """p = sum of response-token log-probs (EOS included) / |y|^alpha, as in the RRHF loss."""

    def __init__(self, config: ScoreConfig) -> None:
        self.alpha = config.length_penalty
        self.policy = PolicyLogprobs(
            config.model or "", config.max_length, config.batch_size or 16, config.pack_prompt, config.bf16,
            config.sort_by_length,
        )

    def score(self, records: Sequence[Record], locations: Sequence[Location]) -> list[list[float | Failure]]:
        sums, lengths = self.policy.sums(records)
        return [[s / n**self.alpha for s, n in zip(ss, ns, strict=True)] for ss, ns in zip(sums, lengths, strict=True)]

    def close(self) -> None:
        """Drop the policy, so its memory is free for a next stage in this process."""
        self.policy = None  # type: ignore[assignment]
