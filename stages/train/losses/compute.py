"""The loss of a batch by name: `--loss` picks the function."""

from __future__ import annotations

from collections.abc import Callable

import torch

from stages.train.losses.common import LossBatch, LossParts, LossSettings
from stages.train.losses.dpo import dpo_loss
from stages.train.losses.lipo import lipo_loss
from stages.train.losses.listmle import listmle_loss
from stages.train.losses.pro import pro_loss
from stages.train.losses.rrhf import rrhf_loss
from stages.train.losses.simpo import simpo_loss

LossFunction = Callable[[LossBatch, LossSettings], LossParts]
LOSSES: dict[str, LossFunction] = {
    "rrhf": rrhf_loss, "pro": pro_loss, "listmle": listmle_loss, "lipo": lipo_loss, "dpo": dpo_loss,
    "simpo": simpo_loss,
}


def batch_loss(name: str, batch: dict[str, torch.Tensor], logp_sum: torch.Tensor, settings: LossSettings) -> LossParts:
    """Loss `name` of a collated batch (`packing.collate`'s keys) given its responses' summed log-probs."""
    return LOSSES[name](LossBatch.collated(batch, logp_sum), settings)
