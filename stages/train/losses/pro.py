"""PRO, Preference Ranking Optimization (Song et al., arXiv 2306.17492), on the flat layout.

A query's n responses sorted by reward r (best first), s_i the mean token log-prob of response i. For each
position k < n: T_k^i = r_k - r_i for every i after k, T_k^k = max_{i>k} T_k^i, and
    L_k = log(exp(s_k T_k^k) + sum_{i>k} exp(s_i T_k^i)) - s_k T_k^k;
the query's loss is sum_k L_k plus sft_weight (n - 1)^2 x the NLL of its best response.

Checked against the authors' compute_loss (PRO/train/utils/process_manager.py). Differences: they add 1e-10
inside the log (here a log-sum-exp, exact); their SFT term is the summed NLL (here per --sft-reduction, per token
by default) weighted by sft_weight (n - 1)^2 with sft_weight 0.05 in their scripts (the default here too); they
average L_k over the batch per position, here each query's sum is averaged over queries. Responses of equal reward
keep their input order (a stable sort): between them T = 0, so they carry no preference. A ranked file's chosen
pairs are not used: PRO ranks the whole list by its scores.
"""

from __future__ import annotations

import torch

from stages.train.losses.common import LossBatch, LossParts, LossSettings, assemble, per_query_sum


def pro_loss(batch: LossBatch, settings: LossSettings) -> LossParts:
    """PRO's loss of a batch, averaged over queries; `pairs` and `ref_logp` unused."""
    rewards, query = batch.rewards, batch.query
    s = batch.logp_sum / batch.lengths
    index = torch.arange(len(s), device=s.device)
    same = query[:, None] == query[None, :]
    # later[k, i]: i comes after k in the query's order (reward descending, input order among equals).
    later = same & ((rewards[None, :] < rewards[:, None]) | ((rewards[None, :] == rewards[:, None])
                                                             & (index[None, :] > index[:, None])))
    gaps = rewards[:, None] - rewards[None, :]  # T_k^i = r_k - r_i
    has_later = later.any(dim=1)
    top = torch.where(later, gaps, float("-inf")).amax(dim=1)
    top = torch.where(has_later, top, 0.0)  # T_k^k; the last position has no term
    others = torch.where(later, s[None, :] * gaps, float("-inf"))  # s_i T_k^i
    own = s * top  # s_k T_k^k
    terms = torch.logsumexp(torch.cat([own[:, None], others], dim=1), dim=1) - own
    rank_per_query = per_query_sum(torch.where(has_later, terms, 0.0), query)
    n = per_query_sum(torch.ones_like(s), query)
    return assemble(rank_per_query, batch, settings, s, batch.worse(chosen_pairs=False), sft_scale=(n - 1) ** 2)
