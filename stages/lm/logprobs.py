"""Summed log-probabilities of each response in a collated batch, lean or naive."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from stages.lm import shared_prompt
from stages.lm.head import LabelLogProbHead, selecting


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


def model_inputs(model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The model's forward arguments for a collated batch: a padding mask, or a packed batch's layout."""
    inputs: dict[str, Any] = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"]}
    if "attention_mask" in batch:
        inputs["attention_mask"] = batch["attention_mask"]
    else:
        shared_prompt.check_installed(model)
        inputs[shared_prompt.KWARG] = {key: batch[key] for key in shared_prompt.LAYOUT_KEYS}
    return inputs
