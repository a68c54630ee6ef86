"""What the losses share: their settings, the figures they return, and the per-query bookkeeping on the flat
layout (R responses, `query` (R,) the query index 0..Q-1 of each, so k may differ per query). Pure tensor code.

Per-query figures live in R slots (Q <= R, queries numbered 0..Q-1), so no step waits on the device to learn Q:
the trainer reads numbers only when it logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch


@dataclass(frozen=True)
class LossSettings:
    """The losses' knobs; defaults are RRHF's (each loss reads the ones it has)."""

    rank_weight: float = 1.0
    sft_weight: float = 1.0
    anchor_weight: float = 0.0  # NLL of every response, averaged per query
    length_penalty: float = 1.0  # alpha in p_i = logp_i / |y_i|^alpha (rrhf)
    rank_loss: Literal["hinge", "logistic"] = "hinge"  # rrhf
    margin: float = 0.0  # rrhf
    beta: float = 1.0  # rrhf logistic, listmle, lipo, dpo, simpo
    gamma: float = 0.0  # simpo
    sft_reduction: Literal["mean", "sum"] = "mean"


@dataclass(frozen=True)
class LossBatch:
    """A batch of R responses from Q queries on the flat layout, in fp32 whatever the model's precision.

    logp_sum (R,): summed log-probs of each response's learned tokens; lengths (R,): their count |y_i|;
    rewards (R,); query (R,): the query index 0..Q-1 of each response; pairs (P, 2): batch indices of (better,
    worse) responses, a ranked file's chosen pairs where given; ref_logp (R,): the reference's summed log-probs,
    for the losses that read them; sft_targets (R,) bool: whether each response may be the SFT term's target
    (None: every one may).
    """

    logp_sum: torch.Tensor
    lengths: torch.Tensor
    rewards: torch.Tensor
    query: torch.Tensor
    pairs: torch.Tensor | None = None
    ref_logp: torch.Tensor | None = None
    sft_targets: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for name in ("logp_sum", "lengths", "rewards", "ref_logp"):
            if (value := getattr(self, name)) is not None:
                object.__setattr__(self, name, value.float())

    @classmethod
    def collated(cls, batch: dict[str, torch.Tensor], logp_sum: torch.Tensor) -> LossBatch:
        """The LossBatch of a collated batch (`packing.collate`'s keys) given its responses' summed log-probs."""
        return cls(logp_sum, batch["lengths"], batch["rewards"], batch["response_query"], batch.get("pairs"),
                   batch.get("ref_logps"), batch.get("sft_targets"))

    def reference(self, loss: str) -> torch.Tensor:
        """ref_logp, which loss `loss` needs."""
        if self.ref_logp is None:
            raise ValueError(f"{loss} needs the reference log-probs")
        return self.ref_logp

    def worse(self, chosen_pairs: bool = True) -> torch.Tensor:
        """`worse_matrix` of the batch: its chosen pairs where it has them and `chosen_pairs`, else every pair of
        differing reward."""
        return worse_matrix(self.rewards, self.query, self.pairs if chosen_pairs else None)


@dataclass
class LossParts:
    """The batch loss and what is logged about it; all but `loss` are detached. `rank_loss` is the preference
    part, `sft_loss` the NLL on each query's best response (unweighted), `p_best`/`p_worst` the loss's own score
    (rrhf's p, an implicit reward, a mean log-prob) of the best and worst response."""

    loss: torch.Tensor
    rank_loss: torch.Tensor
    sft_loss: torch.Tensor
    rank_correct: torch.Tensor  # counts, kept on the device: reading them is a host sync
    rank_pairs: torch.Tensor
    p_best: torch.Tensor
    p_worst: torch.Tensor


def worse_matrix(rewards: torch.Tensor, query: torch.Tensor, pairs: torch.Tensor | None) -> torch.Tensor:
    """(R, R) bool, [i, j]: response i is ranked below response j of the same query. `pairs` (P, 2) are batch
    indices of (better, worse) when given (a ranked file's); otherwise every pair of a query's responses whose
    rewards differ."""
    if pairs is None:
        return (query[:, None] == query[None, :]) & (rewards[:, None] < rewards[None, :])
    slots = len(rewards)
    worse = torch.zeros((slots, slots), dtype=torch.bool, device=rewards.device)
    worse[pairs[:, 1], pairs[:, 0]] = True
    return worse


def per_query_sum(values: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """(R,) values summed into their query's slot (R slots)."""
    return torch.zeros(len(values), dtype=values.dtype, device=values.device).index_add_(0, query, values)


def present_queries(query: torch.Tensor) -> torch.Tensor:
    """(R,) bool: which of the R slots is a query of the batch."""
    return torch.zeros(len(query), dtype=torch.bool, device=query.device).index_fill_(0, query, True)


def first_argmax_per_query(rewards: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """(R,) per query slot: the first response (lowest index) holding the query's highest reward, as
    `contract.schema.best_index` picks it on one record."""
    slots = len(rewards)
    index = torch.arange(slots, device=rewards.device)
    top = torch.full((slots,), float("-inf"), dtype=rewards.dtype, device=rewards.device)
    top = top.scatter_reduce(0, query, rewards, reduce="amax")
    is_top = rewards == top[query]
    first = torch.full((slots,), slots - 1, dtype=torch.long, device=rewards.device)
    return first.scatter_reduce(0, query[is_top], index[is_top], reduce="amin", include_self=False)


def response_nll(logp_sum: torch.Tensor, lengths: torch.Tensor, reduction: Literal["mean", "sum"]) -> torch.Tensor:
    """(R,) each response's NLL, per token (mean) or summed."""
    return -logp_sum / lengths if reduction == "mean" else -logp_sum


def sft_on_best(
    logp_sum: torch.Tensor, lengths: torch.Tensor, best: torch.Tensor, reduction: Literal["mean", "sum"]
) -> torch.Tensor:
    """(R,) per query slot: the NLL of its best response, per token (mean) or summed."""
    return response_nll(logp_sum[best], lengths[best], reduction)


def anchor(logp_sum: torch.Tensor, lengths: torch.Tensor, query: torch.Tensor,
           reduction: Literal["mean", "sum"]) -> torch.Tensor:
    """(R,) per query slot: the mean over its responses of each one's NLL (per token, or summed).

    On responses sampled from the starting model this is its forward KL to the model being trained, up to a
    constant: it holds the level of every response's log-prob where the ranking part moves only their differences.
    """
    nll = response_nll(logp_sum, lengths, reduction)
    counts = per_query_sum(torch.ones_like(nll), query)
    return per_query_sum(nll, query) / counts.clamp(min=1)


def assemble(
    rank_per_query: torch.Tensor,
    batch: LossBatch,
    settings: LossSettings,
    score: torch.Tensor,
    worse: torch.Tensor,
    sft_scale: torch.Tensor | None = None,
) -> LossParts:
    """The LossParts of a batch, averaged over its queries: rank_weight x the preference part (per query slot)
    plus sft_weight (times `sft_scale` per slot, where given) x the NLL on each query's best where the batch's
    `sft_targets` allow it, plus anchor_weight x the `anchor` of each query; `score` (R,) is the loss's own score of
    each response, which the logged accuracy and best/worst figures read."""
    present = present_queries(batch.query)
    best = first_argmax_per_query(batch.rewards, batch.query)
    worst = first_argmax_per_query(-batch.rewards, batch.query)
    sft_per_query = sft_on_best(batch.logp_sum, batch.lengths, best, settings.sft_reduction)
    if batch.sft_targets is not None:
        learned = batch.sft_targets[best].float()
        sft_scale = learned if sft_scale is None else sft_scale * learned
    sft_weight = settings.sft_weight if sft_scale is None else settings.sft_weight * sft_scale
    per_query = settings.rank_weight * rank_per_query + sft_weight * sft_per_query
    if settings.anchor_weight:
        per_query = per_query + settings.anchor_weight * anchor(batch.logp_sum, batch.lengths, batch.query,
                                                                settings.sft_reduction)
    n_queries = present.sum()

    def mean(values: torch.Tensor) -> torch.Tensor:
        return torch.where(present, values, 0.0).sum() / n_queries

    score = score.detach()
    return LossParts(
        loss=mean(per_query),
        rank_loss=mean(rank_per_query).detach(),
        sft_loss=mean(sft_per_query).detach(),
        rank_correct=((score[:, None] < score[None, :]) & worse).sum(),
        rank_pairs=worse.sum(),
        p_best=mean(score[best]),
        p_worst=mean(score[worst]),
    )
