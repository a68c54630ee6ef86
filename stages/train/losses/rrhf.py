"""The RRHF loss (arXiv 2304.05302, section 3): a ranking loss on length-normalised log-probs plus SFT on the
best response."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stages.train.losses.common import LossParts, LossSettings, as_float, assemble, per_query_sum, worse_matrix


def rrhf_loss(
    logp_sum: torch.Tensor,
    lengths: torch.Tensor,
    rewards: torch.Tensor,
    query: torch.Tensor,
    settings: LossSettings,
    pairs: torch.Tensor | None = None,
    ref_logp: torch.Tensor | None = None,
) -> LossParts:
    """Loss of a batch of R responses from Q queries, averaged over queries.

    logp_sum (R,): summed log-probs of each response's learned tokens; lengths (R,): their count |y_i|;
    rewards (R,); query (R,): the query index 0..Q-1 of each response. `pairs` (P, 2), batch indices of
    (better, worse) responses, are the ranking pairs when given (a ranked file's); otherwise every pair of a
    query's responses with different rewards is one (the paper's). SFT takes each query's highest reward.
    Per pair (i below j): hinge max(0, p_i - p_j + margin), or logistic -log sigmoid(beta (p_j - p_i) - margin),
    p = logp / |y|^alpha. `ref_logp` is not used.
    """
    logp_sum, lengths, rewards = as_float(logp_sum, lengths, rewards)
    p = logp_sum / lengths.pow(settings.length_penalty)  # (R,)
    worse = worse_matrix(rewards, query, pairs)
    gap = p[:, None] - p[None, :]  # p_i - p_j
    if settings.rank_loss == "hinge":
        pair_loss = torch.relu(gap + settings.margin)
    else:
        pair_loss = -F.logsigmoid(-settings.beta * gap - settings.margin)
    rank_per_query = per_query_sum((pair_loss * worse).sum(dim=1), query)
    return assemble(rank_per_query, logp_sum, lengths, rewards, query, settings, p, worse)
