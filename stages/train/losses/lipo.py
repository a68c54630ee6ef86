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

from stages.train.losses.common import LossParts, LossSettings, as_float, assemble, per_query_sum, worse_matrix


def lipo_loss(
    logp_sum: torch.Tensor,
    lengths: torch.Tensor,
    rewards: torch.Tensor,
    query: torch.Tensor,
    settings: LossSettings,
    pairs: torch.Tensor | None = None,
    ref_logp: torch.Tensor | None = None,
) -> LossParts:
    """LiPO-lambda's loss of a batch (inputs as `listmle_loss`'s), averaged over queries; `pairs` unused."""
    if ref_logp is None:
        raise ValueError("lipo needs the reference log-probs")
    logp_sum, lengths, rewards, ref_logp = as_float(logp_sum, lengths, rewards, ref_logp)
    s = settings.beta * (logp_sum - ref_logp)
    rank = _ranks(s.detach(), query)
    gain = torch.exp2(rewards) - 1
    inverse_discount = 1 / torch.log2(1 + rank)
    weight = (gain[:, None] - gain[None, :]).abs() * (inverse_discount[:, None] - inverse_discount[None, :]).abs()
    worse = worse_matrix(rewards, query, None)  # [j, i]: j below i
    pair_loss = F.softplus(-(s[None, :] - s[:, None]))  # [j, i]: log(1 + exp(-(s_i - s_j)))
    rank_per_query = per_query_sum((weight * pair_loss * worse).sum(dim=1), query)
    return assemble(rank_per_query, logp_sum, lengths, rewards, query, settings, s, worse)


def _ranks(s: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    # 1 + the responses of the same query ahead of each: higher s, or equal s and earlier.
    index = torch.arange(len(s), device=s.device)
    ahead = (query[:, None] == query[None, :]) & (
        (s[None, :] > s[:, None]) | ((s[None, :] == s[:, None]) & (index[None, :] < index[:, None]))
    )
    return 1 + ahead.sum(dim=1).to(s.dtype)
