"""Summed log-probabilities of each response in a collated batch, lean or naive."""

from __future__ import annotations

import torch
from torch import nn

from stages.lm.head import LabelLogProbHead, selecting
from stages.lm.packing import additive_mask


def response_logprobs(model: nn.Module, batch: dict[str, torch.Tensor], head: LabelLogProbHead | None) -> torch.Tensor:
    """(R,) fp32 sums of log pi(target) over each response's learned tokens.

    With `head` (see head.py) only the learned positions are projected, chunk by chunk; without it the
    full logits are computed, the fallback for models whose logits the lean head cannot reproduce.
    """
    inputs = model_inputs(model, batch)
    rows, cols, targets = batch["gather_rows"], batch["gather_cols"], batch["target_ids"]
    if head is not None:
        with selecting(head, rows, cols, targets):
            token_logp = model(**inputs, use_cache=False).logits  # (N,)
    else:
        # Rows first, then the normaliser: only the learned positions' logits are made fp32.
        logits = model(**inputs, use_cache=False).logits[rows, cols].float()  # (N, V)
        token_logp = logits.gather(-1, targets[:, None]).squeeze(-1) - logits.logsumexp(dim=-1)
    sums = torch.zeros(batch["lengths"].shape[0], dtype=torch.float32, device=token_logp.device)
    return sums.index_add(0, batch["target_response"], token_logp.float())


def model_inputs(model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's forward arguments for a collated batch, a packed bool mask made additive in the right dtype."""
    mask = batch["attention_mask"]
    if mask.dim() == 4:
        mask = additive_mask(mask, _compute_dtype(model, mask.device))
    return {"input_ids": batch["input_ids"], "attention_mask": mask, "position_ids": batch["position_ids"]}


def _compute_dtype(model: nn.Module, device: torch.device) -> torch.dtype:
    # SDPA wants a float mask in the dtype attention runs in: the autocast dtype under mixed precision.
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return next(model.parameters()).dtype
