"""ListMLE: the Plackett-Luce likelihood of the reward order (DPO, arXiv 2305.18290, appendix A.3) on implicit
rewards s_i = beta (log pi(y_i) - log pi_ref(y_i)), the log-probs summed over each response's tokens:
    L = -sum_k log(exp(s_tau(k)) / sum_{j >= k} exp(s_tau(j))),  tau the responses by reward, best first.

Ties in reward: responses of equal reward are not ordered against each other. Each response's denominator
holds itself and the responses strictly below it, not its equals: a list without ties gives exactly the loss
above, and a query whose responses all tie contributes nothing. A ranked file's chosen pairs are not used.
"""

from __future__ import annotations

import torch

from stages.train.losses.common import LossBatch, LossParts, LossSettings, assemble, per_query_sum


def listmle_loss(batch: LossBatch, settings: LossSettings) -> LossParts:
    """ListMLE's loss of a batch (it needs `ref_logp`), averaged over queries; `pairs` unused."""
    s = settings.beta * (batch.logp_sum - batch.reference("listmle"))
    worse = batch.worse(chosen_pairs=False)  # [i, j]: i strictly below j
    below = torch.where(worse.T, s[None, :], float("-inf"))  # [k, j]: s_j for j strictly below k
    terms = torch.logsumexp(torch.cat([s[:, None], below], dim=1), dim=1) - s
    return assemble(per_query_sum(terms, batch.query), batch, settings, s, worse)
