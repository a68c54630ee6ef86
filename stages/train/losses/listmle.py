"""ListMLE: the Plackett-Luce likelihood of the reward order (DPO, arXiv 2305.18290, appendix A.3) on implicit
rewards s_i = beta (log pi(y_i) - log pi_ref(y_i)), the log-probs summed over each response's tokens:
    L = -sum_k log(exp(s_tau(k)) / sum_{j >= k} exp(s_tau(j))),  tau the responses by reward, best first.

Ties in reward: responses of equal reward are not ordered against each other. Each response's denominator
holds itself and the responses strictly below it, not its equals: a list without ties gives exactly the loss
above, and a query whose responses all tie contributes nothing. A ranked file's chosen pairs are not used.
"""

from __future__ import annotations

import torch

from stages.train.losses.common import LossParts, LossSettings, as_float, assemble, per_query_sum, worse_matrix


def listmle_loss(
    logp_sum: torch.Tensor,
    lengths: torch.Tensor,
    rewards: torch.Tensor,
    query: torch.Tensor,
    settings: LossSettings,
    pairs: torch.Tensor | None = None,
    ref_logp: torch.Tensor | None = None,
) -> LossParts:
    """ListMLE's loss of a batch (inputs as `rrhf_loss`'s, plus `ref_logp` (R,), the reference's summed
    log-probs), averaged over queries; `pairs` unused."""
    if ref_logp is None:
        raise ValueError("listmle needs the reference log-probs")
    logp_sum, lengths, rewards, ref_logp = as_float(logp_sum, lengths, rewards, ref_logp)
    s = settings.beta * (logp_sum - ref_logp)
    worse = worse_matrix(rewards, query, None)  # [i, j]: i strictly below j
    below = torch.where(worse.T, s[None, :], float("-inf"))  # [k, j]: s_j for j strictly below k
    terms = torch.logsumexp(torch.cat([s[:, None], below], dim=1), dim=1) - s
    return assemble(per_query_sum(terms, query), logp_sum, lengths, rewards, query, settings, s, worse)
