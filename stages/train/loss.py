"""The RRHF loss (arXiv 2304.05302, section 3) over per-response log-probabilities: pure tensor code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossSettings:
    """The loss's knobs; defaults are the paper's."""

    rank_weight: float = 1.0
    sft_weight: float = 1.0
    length_penalty: float = 1.0  # alpha in p_i = logp_i / |y_i|^alpha
    rank_loss: Literal["hinge", "logistic"] = "hinge"
    margin: float = 0.0
    beta: float = 1.0  # logistic only
    sft_reduction: Literal["mean", "sum"] = "mean"


@dataclass
class LossParts:
    """The batch loss and what is logged about it; all but `loss` are detached."""

    loss: torch.Tensor
    rank_loss: torch.Tensor
    sft_loss: torch.Tensor
    rank_correct: torch.Tensor  # counts, kept on the device: reading them is a host sync
    rank_pairs: torch.Tensor
    p_best: torch.Tensor
    p_worst: torch.Tensor


def rrhf_loss(
    logp_sum: torch.Tensor,
    lengths: torch.Tensor,
    rewards: torch.Tensor,
    query: torch.Tensor,
    settings: LossSettings,
    pairs: torch.Tensor | None = None,
) -> LossParts:
    """Loss of a batch of R responses from Q queries, averaged over queries.

    logp_sum (R,): summed log-probs of each response's learned tokens; lengths (R,): their count |y_i|;
    rewards (R,); query (R,): the query index 0..Q-1 of each response. `pairs` (P, 2), batch indices of
    (better, worse) responses, are the ranking pairs when given (a ranked file's); otherwise every pair of a
    query's responses with different rewards is one (the paper's). SFT takes each query's highest reward.
    """
    logp_sum = logp_sum.float()
    lengths = lengths.to(logp_sum)
    rewards = rewards.to(logp_sum)
    p = logp_sum / lengths.pow(settings.length_penalty)  # (R,)
    # Per-query figures live in R slots (Q <= R, queries numbered 0..Q-1), so no step waits on the device
    # to learn Q: the trainer reads numbers only when it logs.
    slots = len(p)
    present = torch.zeros(slots, dtype=torch.bool, device=p.device).index_fill_(0, query, True)  # (R,)

    # worse[i, j]: response i is ranked below response j of the same query.
    if pairs is None:
        same_query = query[:, None] == query[None, :]  # (R, R)
        worse = same_query & (rewards[:, None] < rewards[None, :])
    else:
        worse = torch.zeros((slots, slots), dtype=torch.bool, device=p.device)
        worse[pairs[:, 1], pairs[:, 0]] = True
    gap = p[:, None] - p[None, :]  # p_i - p_j
    if settings.rank_loss == "hinge":
        pair_loss = torch.relu(gap + settings.margin)
    else:
        pair_loss = -F.logsigmoid(-settings.beta * gap - settings.margin)
    rank_per_query = torch.zeros(slots, dtype=p.dtype, device=p.device)
    rank_per_query.index_add_(0, query, (pair_loss * worse).sum(dim=1))

    best = _first_argmax_per_query(rewards, query, slots)  # (R,), meaningful where `present`
    worst = _first_argmin_per_query(rewards, query, slots)
    sft_per_query = -logp_sum[best]
    if settings.sft_reduction == "mean":
        sft_per_query = sft_per_query / lengths[best]

    per_query = settings.rank_weight * rank_per_query + settings.sft_weight * sft_per_query
    n_queries = present.sum()

    def mean(values: torch.Tensor) -> torch.Tensor:
        return torch.where(present, values, 0.0).sum() / n_queries

    return LossParts(
        loss=mean(per_query),
        rank_loss=mean(rank_per_query).detach(),
        sft_loss=mean(sft_per_query).detach(),
        rank_correct=((gap < 0) & worse).sum(),
        rank_pairs=worse.sum(),
        p_best=mean(p[best]).detach(),
        p_worst=mean(p[worst]).detach(),
    )


def _first_argmax_per_query(rewards: torch.Tensor, query: torch.Tensor, n_queries: int) -> torch.Tensor:
    # The first response (lowest index) holding the query's highest reward.
    index = torch.arange(len(rewards), device=rewards.device)
    top = torch.full((n_queries,), float("-inf"), dtype=rewards.dtype, device=rewards.device)
    top = top.scatter_reduce(0, query, rewards, reduce="amax")
    is_top = rewards == top[query]
    first = torch.full((n_queries,), len(rewards) - 1, dtype=torch.long, device=rewards.device)
    return first.scatter_reduce(0, query[is_top], index[is_top], reduce="amin", include_self=False)


def _first_argmin_per_query(rewards: torch.Tensor, query: torch.Tensor, n_queries: int) -> torch.Tensor:
    return _first_argmax_per_query(-rewards, query, n_queries)
