"""The losses `rrhf train --loss` offers and each one's defaults, with the paper they come from. No torch: the
config and `--help` read it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

REFERENCE_COMMAND = "rrhf score FILE --scorer logprob --model BASE --length-penalty 0 --as {name} --keep-score"
"""What adds a reference: each response's summed log-prob under the base model, kept under scores.NAME."""

LossName = Literal["rrhf", "pro", "listmle", "lipo", "dpo", "simpo"]
LOSS_NAMES: tuple[LossName, ...] = ("rrhf", "pro", "listmle", "lipo", "dpo", "simpo")


@dataclass(frozen=True)
class LossDefaults:
    """A loss's defaults and needs: beta, gamma (None: the loss has none), the SFT weight on the best response,
    whether it reads a reference log-prob (`--reference`) and whether its rewards must be scores."""

    paper: str
    beta: float | None
    gamma: float | None
    sft_weight: float
    reference: bool = False
    scores: bool = False


DEFAULTS: dict[str, LossDefaults] = {
    # RRHF: beta scales only the logistic ranking variant (1: the plain logistic loss).
    "rrhf": LossDefaults("RRHF, arXiv 2304.05302", beta=1.0, gamma=None, sft_weight=1.0),
    # PRO has no beta; its authors weight SFT by 0.05 (n - 1)^2 (train_hh.sh), the (n - 1)^2 applied per query.
    "pro": LossDefaults("PRO, arXiv 2306.17492", beta=None, gamma=None, sft_weight=0.05, scores=True),
    # The Plackett-Luce objective of DPO's appendix A.3, with DPO's beta.
    "listmle": LossDefaults("DPO appendix A.3, arXiv 2305.18290", beta=0.1, gamma=None, sft_weight=0.0,
                            reference=True),
    "lipo": LossDefaults("LiPO, arXiv 2402.01878", beta=0.05, gamma=None, sft_weight=0.0, reference=True),
    "dpo": LossDefaults("DPO, arXiv 2305.18290", beta=0.1, gamma=None, sft_weight=0.0, reference=True),
    # SimPO's beta 2.0 with its gamma/beta ratio 0.5 (its released configs), so gamma 1.0.
    "simpo": LossDefaults("SimPO, arXiv 2405.14734", beta=2.0, gamma=1.0, sft_weight=0.0),
}


def defaults_help() -> str:
    """One line per loss for `--help`: its defaults and their paper."""
    parts = []
    for name, d in DEFAULTS.items():
        values = [f"{key} {value:g}" for key, value in (("beta", d.beta), ("gamma", d.gamma)) if value is not None]
        parts.append(f"{name}: {', '.join([*values, f'sft-weight {d.sft_weight:g}'])} ({d.paper})")
    return "; ".join(parts)
