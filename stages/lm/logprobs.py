"""Summed log-probabilities of each response in a collated batch, lean or naive."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from stages.lm import shared_prompt
from stages.lm.head import LabelLogProbHead, returning_label_logprobs


def response_logprobs(model: nn.Module, batch: dict[str, torch.Tensor], head: LabelLogProbHead | None) -> torch.Tensor:
    """(R,) fp32 sums of log pi(target) over each response's learned tokens.

    With `head` (a LabelLogProbHead swapped into the model, see head.py) only the learned positions are projected,
    chunk by chunk; without it the full logits are computed, the fallback for models the lean head cannot serve.
    """
    inputs = model_inputs(model, batch)
    rows, cols, targets = batch["gather_rows"], batch["gather_cols"], batch["target_ids"]
    if head is not None:
        # The swapped-in head does the projection inside the model's own forward rather than here on hidden
        # states taken out of it: DDP, FSDP and DeepSpeed hooks and gradient checkpointing stay intact, and the
        # full (B, L, V) logits are never built.
        with returning_label_logprobs(head, rows, cols, targets):
            label_logprobs = model(**inputs, use_cache=False).logits  # (N,) target log-probs, in the logits slot
    else:
        # Rows first, then the normaliser: only the learned positions' logits are made fp32.
        logits = model(**inputs, use_cache=False).logits[rows, cols].float()  # (N, V)
        label_logprobs = logits.gather(-1, targets[:, None]).squeeze(-1) - logits.logsumexp(dim=-1)
    sums = torch.zeros(batch["lengths"].shape[0], dtype=torch.float32, device=label_logprobs.device)
    return sums.index_add(0, batch["target_response"], label_logprobs.float())


def model_inputs(model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The model's forward arguments for a collated batch: a padding mask, or a packed batch's layout."""
    inputs: dict[str, Any] = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"]}
    if "attention_mask" in batch:
        inputs["attention_mask"] = batch["attention_mask"]
    else:
        shared_prompt.check_installed(model)
        inputs[shared_prompt.KWARG] = {key: batch[key] for key in shared_prompt.LAYOUT_KEYS}
    return inputs
