"""DPO's sigmoid loss (Rafailov et al., arXiv 2305.18290, eq. 7) over a query's ranking pairs:
    -log sigmoid(beta ((log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l)))),
log-probs summed over each response's tokens; the mean over a query's pairs, then over queries (a batch of
one-pair queries is TRL's DPOTrainer loss_type="sigmoid" on the same log-probs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stages.train.losses.common import LossBatch, LossParts, LossSettings, assemble, per_query_sum


def dpo_loss(batch: LossBatch, settings: LossSettings) -> LossParts:
    """DPO's loss of a batch (pairs as `rrhf_loss`'s; it needs `ref_logp`), averaged over queries; a query
    without pairs (all rewards equal) adds only its SFT term."""
    reward = settings.beta * (batch.logp_sum - batch.reference("dpo"))  # the implicit reward
    worse = batch.worse()  # [l, w]: l below w
    pair_loss = -F.logsigmoid(reward[None, :] - reward[:, None])
    return assemble(mean_over_pairs(pair_loss, worse, batch.query), batch, settings, reward, worse)


def mean_over_pairs(pair_loss: torch.Tensor, worse: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """(R,) per query slot: the mean of `pair_loss` [l, w] over the query's pairs (`worse`), 0 where it has none."""
    total = per_query_sum((pair_loss * worse).sum(dim=1), query)
    count = per_query_sum(worse.sum(dim=1).to(total.dtype), query)
    return total / count.clamp(min=1)
