"""The RRHF loss (arXiv 2304.05302, section 3): a ranking loss on length-normalised log-probs plus SFT on the
best response."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stages.train.losses.common import LossBatch, LossParts, LossSettings, assemble, per_query_sum


def rrhf_loss(batch: LossBatch, settings: LossSettings) -> LossParts:
    """Loss of a batch, averaged over its queries.

    The ranking pairs are the batch's chosen pairs when it has them (a ranked file's); otherwise every pair of a
    query's responses with different rewards is one (the paper's). SFT takes each query's highest reward.
    Per pair (i below j): hinge max(0, p_i - p_j + margin), or logistic -log sigmoid(beta (p_j - p_i) - margin),
    p = logp / |y|^alpha. `ref_logp` is not used.
    """
    p = batch.logp_sum / batch.lengths.pow(settings.length_penalty)  # (R,)
    worse = batch.worse()
    gap = p[:, None] - p[None, :]  # p_i - p_j
    if settings.rank_loss == "hinge":
        pair_loss = torch.relu(gap + settings.margin)
    else:
        pair_loss = -F.logsigmoid(-settings.beta * gap - settings.margin)
    rank_per_query = per_query_sum((pair_loss * worse).sum(dim=1), batch.query)
    return assemble(rank_per_query, batch, settings, p, worse)
