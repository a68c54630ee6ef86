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
    rank_correct: int
    rank_pairs: int
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
    n_queries = int(query.max().item()) + 1
    p = logp_sum / lengths.pow(settings.length_penalty)  # (R,)

    # worse[i, j]: response i is ranked below response j of the same query.
    if pairs is None:
        same_query = query[:, None] == query[None, :]  # (R, R)
        worse = same_query & (rewards[:, None] < rewards[None, :])
    else:
        worse = torch.zeros((len(p), len(p)), dtype=torch.bool, device=p.device)
        worse[pairs[:, 1], pairs[:, 0]] = True
    gap = p[:, None] - p[None, :]  # p_i - p_j
    if settings.rank_loss == "hinge":
        pair_loss = torch.relu(gap + settings.margin)
    else:
        pair_loss = -F.logsigmoid(-settings.beta * gap - settings.margin)
    rank_per_query = torch.zeros(n_queries, dtype=p.dtype, device=p.device)
    rank_per_query.index_add_(0, query, (pair_loss * worse).sum(dim=1))

    best = _first_argmax_per_query(rewards, query, n_queries)  # (Q,)
    worst = _first_argmin_per_query(rewards, query, n_queries)
    sft_per_query = -logp_sum[best]
    if settings.sft_reduction == "mean":
        sft_per_query = sft_per_query / lengths[best]

    per_query = settings.rank_weight * rank_per_query + settings.sft_weight * sft_per_query
    correct = int(((gap < 0) & worse).sum().item())
    return LossParts(
        loss=per_query.mean(),
        rank_loss=rank_per_query.mean().detach(),
        sft_loss=sft_per_query.mean().detach(),
        rank_correct=correct,
        rank_pairs=int(worse.sum().item()),
        p_best=p[best].mean().detach(),
        p_worst=p[worst].mean().detach(),
    )


def _first_argmax_per_query(rewards: torch.Tensor, query: torch.Tensor, n_queries: int) -> torch.Tensor:
    # The first response (lowest index) holding the query's highest reward.
    index = torch.arange(len(rewards), device=rewards.device)
    top = torch.full((n_queries,), float("-inf"), dtype=rewards.dtype, device=rewards.device)
    top = top.scatter_reduce(0, query, rewards, reduce="amax")
    is_top = rewards == top[query]
    first = torch.full((n_queries,), len(rewards), dtype=torch.long, device=rewards.device)
    return first.scatter_reduce(0, query[is_top], index[is_top], reduce="amin")


def _first_argmin_per_query(rewards: torch.Tensor, query: torch.Tensor, n_queries: int) -> torch.Tensor:
    return _first_argmax_per_query(-rewards, query, n_queries)
