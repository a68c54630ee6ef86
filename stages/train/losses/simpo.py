"""SimPO (Meng et al., arXiv 2405.14734, eq. 6) over a query's ranking pairs, with no reference model:
    -log sigmoid(beta (a_w - a_l) - gamma),  a = mean token log-prob of a response;
the mean over a query's pairs, then over queries. --sft-weight adds the NLL of the best response (CPO-SimPO).
A batch of one-pair queries gives TRL's CPOTrainer loss_type="simpo" (simpo_gamma = gamma) exactly; with
--sft-weight (cpo_alpha) too for one pair, while over several TRL averages the NLL over all chosen tokens of the
batch and this loss over queries (each query's per-token NLL, as RRHF's SFT term)."""

from __future__ import annotations

import torch.nn.functional as F

from stages.train.losses.common import LossBatch, LossParts, LossSettings, assemble
from stages.train.losses.dpo import mean_over_pairs


def simpo_loss(batch: LossBatch, settings: LossSettings) -> LossParts:
    """SimPO's loss of a batch (pairs as `rrhf_loss`'s), averaged over queries; `ref_logp` unused."""
    a = batch.logp_sum / batch.lengths
    worse = batch.worse()  # [l, w]: l below w
    pair_loss = -F.logsigmoid(settings.beta * (a[None, :] - a[:, None]) - settings.gamma)
    return assemble(mean_over_pairs(pair_loss, worse, batch.query), batch, settings, a, worse)
