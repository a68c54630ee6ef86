"""LiPO-lambda (Liu et al., arXiv 2402.01878, section 4) on implicit rewards s_i = beta (log pi(y_i) - log
pi_ref(y_i)), the log-probs summed over each response's tokens, minimised in the form
    L = sum_{psi_i > psi_j} Delta_ij log(1 + exp(-(s_i - s_j))),
    Delta_ij = |G_i - G_j| |1/D(tau_i) - 1/D(tau_j)|,  G = 2^psi - 1,  D(tau) = log2(1 + tau),
psi the reward (the score as given: scores far above a few make 2^psi dominate, so scores in about [0, 1] suit it)
and tau the 1-based rank of s within its query, detached (equal s: the earlier response ranks first). Pairs are
those of differing reward; a ranked file's chosen pairs are not used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stages.train.losses.common import LossBatch, LossParts, LossSettings, assemble, per_query_sum


def lipo_loss(batch: LossBatch, settings: LossSettings) -> LossParts:
    """LiPO-lambda's loss of a batch (it needs `ref_logp`), averaged over queries; `pairs` unused."""
    s = settings.beta * (batch.logp_sum - batch.reference("lipo"))
    rank = _ranks(s.detach(), batch.query)
    gain = torch.exp2(batch.rewards) - 1
    inverse_discount = 1 / torch.log2(1 + rank)
    weight = (gain[:, None] - gain[None, :]).abs() * (inverse_discount[:, None] - inverse_discount[None, :]).abs()
    worse = batch.worse(chosen_pairs=False)  # [j, i]: j below i
    pair_loss = F.softplus(-(s[None, :] - s[:, None]))  # [j, i]: log(1 + exp(-(s_i - s_j)))
    rank_per_query = per_query_sum((weight * pair_loss * worse).sum(dim=1), batch.query)
    return assemble(rank_per_query, batch, settings, s, worse)


def _ranks(s: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    # 1 + the responses of the same query ahead of each: higher s, or equal s and earlier.
    index = torch.arange(len(s), device=s.device)
    ahead = (query[:, None] == query[None, :]) & (
        (s[None, :] > s[:, None]) | ((s[None, :] == s[:, None]) & (index[None, :] < index[:, None]))
    )
    return 1 + ahead.sum(dim=1).to(s.dtype)
