"""Label log-probabilities at the learned positions only, without holding the full logits.

The model's `lm_head` is turned into a `LabelLogProbHead` (same parameters, same state dict): while a
selection is set it gathers the hidden states of the learned positions, projects them onto the
vocabulary in chunks, and returns each target token's log-probability. Each chunk is recomputed in
the backward pass instead of being stored, so the loss head's memory is one chunk of logits whatever
k, L or V. Running inside the model's own forward keeps DDP, FSDP and DeepSpeed hooks intact.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from rrhf_cli.console import log


def label_logprobs(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor, chunk_size: int
) -> torch.Tensor:
    """log softmax(hidden @ weight.T + bias)[target] per row, in fp32, `chunk_size` rows at a time (0: one go)."""
    if chunk_size <= 0 or hidden.shape[0] <= chunk_size:
        return _chunk_logprobs(hidden, weight, bias, targets)
    parts = []
    for start in range(0, hidden.shape[0], chunk_size):
        rows = slice(start, start + chunk_size)
        if torch.is_grad_enabled():
            parts.append(
                checkpoint(_chunk_logprobs, hidden[rows], weight, bias, targets[rows], use_reentrant=False)
            )
        else:
            parts.append(_chunk_logprobs(hidden[rows], weight, bias, targets[rows]))
    return torch.cat(parts)


def _chunk_logprobs(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor
) -> torch.Tensor:
    logits = F.linear(hidden, weight, bias).float()  # (n, V), fp32 so logsumexp is stable in bf16 runs
    return logits.gather(-1, targets[:, None]).squeeze(-1) - logits.logsumexp(dim=-1)


class LabelLogProbHead(nn.Linear):
    """An `nn.Linear` vocabulary head that, while a selection is set, returns target log-probs instead of logits."""

    chunk_size: int = 1024
    selection: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.selection is None:
            return super().forward(hidden)
        rows, cols, targets = self.selection
        return label_logprobs(hidden[rows, cols], self.weight, self.bias, targets, self.chunk_size)  # (N,)


def unsupported_reason(model: nn.Module) -> str | None:
    """Why the lean head cannot serve this model (it post-processes logits, or its head is no Linear), else None."""
    config = getattr(model, "config", None)
    for name in ("final_logit_softcapping", "logit_scale", "output_multiplier_scale"):
        if getattr(config, name, None) not in (None, 1, 1.0):
            return f"the model rescales its logits ({name})"
    head = model.get_output_embeddings()
    if type(head) not in (nn.Linear, LabelLogProbHead):
        return f"its output head is a {type(head).__name__}, not a Linear layer"
    return None


CHUNK_BYTES = 64 << 20  # fp32 logits of one chunk; backward holds a few such buffers at once


def auto_chunk_rows(vocab_size: int) -> int:
    """Rows per chunk so one chunk's fp32 logits take about CHUNK_BYTES, whatever the vocabulary."""
    return max(16, CHUNK_BYTES // (4 * vocab_size))


def install_head(model: nn.Module, chunk_size: int | None = None) -> LabelLogProbHead:
    """Turn the model's vocabulary head into a LabelLogProbHead in place; parameters are untouched.
    `chunk_size` rows per chunk (None: about 64 MiB of logits; 0: all rows at once)."""
    head = model.get_output_embeddings()
    head.__class__ = LabelLogProbHead
    head.chunk_size = auto_chunk_rows(head.out_features) if chunk_size is None else chunk_size
    return head  # type: ignore[return-value]


def lean_head_or_none(model: nn.Module, stage: str, chunk_size: int | None = None) -> LabelLogProbHead | None:
    """`install_head` where the lean head can serve the model; otherwise None, with one log line saying why."""
    reason = unsupported_reason(model)
    if reason:
        log.info("%s: full-vocabulary log-softmax over all positions, because %s", stage, reason)
        return None
    return install_head(model, chunk_size)


@contextmanager
def selecting(
    head: LabelLogProbHead, rows: torch.Tensor, cols: torch.Tensor, targets: torch.Tensor
) -> Iterator[None]:
    """Make the head return log-probs of `targets` at hidden positions (rows, cols) during a forward."""
    head.selection = (rows, cols, targets)
    try:
        yield
    finally:
        head.selection = None
