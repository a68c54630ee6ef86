"""Label log-probabilities at the learned positions only, without holding the full logits.

`swap_in_label_logprob_head` turns the model's `lm_head` into a `LabelLogProbHead` (same parameters, same
state dict). Inside `returning_label_logprobs(head, rows, cols, targets)` a forward of the model puts, in the
`logits` slot of its output, an (N,) vector of the targets' log-probabilities instead of (B, L, V) logits: the
head gathers the hidden states of the learned positions, projects them onto the vocabulary in chunks and
normalises. With more than one chunk, each is recomputed in the backward pass instead of being stored, so the
loss head's memory is one chunk of logits whatever k, L or V. The work runs inside the model's own forward,
not on hidden states taken out of it, so DDP, FSDP and DeepSpeed hooks and gradient checkpointing stay intact.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from stages.runtime.console import log


def label_logprobs(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor, chunk_size: int
) -> torch.Tensor:
    """log softmax(hidden @ weight.T + bias)[target] per row, in fp32, `chunk_size` rows at a time (0: one go)."""
    chunk_size = chunk_size if chunk_size > 0 else hidden.shape[0]
    if not (torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)):
        with torch.no_grad():
            return torch.cat([
                _target_and_normaliser(hidden[rows], weight, bias, targets[rows], softmax=False)[0]
                for rows in _chunks(hidden.shape[0], chunk_size)
            ])
    return _LabelLogProbs.apply(hidden, weight, bias, targets, chunk_size)


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(start, start + size) for start in range(0, max(n, 1), size)]


def _logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return F.linear(hidden, weight, bias).float()  # (n, V), fp32 so the normaliser is stable in bf16 runs


def _target_and_normaliser(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor, softmax: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(log-probs of the targets, logsumexp per row, and with `softmax` the softmax) of one chunk; the work is
    done in place in the logits' buffer, so a chunk costs one buffer of fp32 logits and nothing more."""
    logits = _logits(hidden, weight, bias)
    target = logits.gather(-1, targets[:, None]).squeeze(-1)
    peak = logits.amax(dim=-1, keepdim=True)
    total = logits.sub_(peak).exp_().sum(dim=-1, keepdim=True)
    normaliser = (peak + total.log()).squeeze(-1)
    return target - normaliser, normaliser, logits.div_(total) if softmax else None


class _LabelLogProbs(torch.autograd.Function):
    """Target log-probs with a hand-written backward: d logp_t / d logits = onehot(t) - softmax, built in place
    on one chunk's logits, so the backward pass holds one chunk and makes no extra passes over it. A single
    chunk keeps its softmax from the forward pass; several are recomputed one at a time."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk_size):  # noqa: ANN001, ANN205
        chunks = _chunks(hidden.shape[0], chunk_size)
        outputs, normalisers, kept = [], [], None
        for rows in chunks:
            # One chunk keeps its softmax for the backward pass; several are recomputed there.
            out, normaliser, kept = _target_and_normaliser(
                hidden[rows], weight, bias, targets[rows], softmax=len(chunks) == 1
            )
            outputs.append(out)
            normalisers.append(normaliser)
        normaliser = torch.cat(normalisers)
        ctx.save_for_backward(hidden, weight, bias, targets, normaliser, kept)
        ctx.chunk_size = chunk_size
        ctx.autocast = (hidden.device.type, torch.is_autocast_enabled(hidden.device.type),
                        torch.get_autocast_dtype(hidden.device.type))
        return torch.cat(outputs)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        hidden, weight, bias, targets, normaliser, kept = ctx.saved_tensors
        want_hidden, want_weight, want_bias = ctx.needs_input_grad[:3]
        grad_hidden = torch.zeros_like(hidden) if want_hidden else None
        grad_weight = grad_bias = None
        device, enabled, dtype = ctx.autocast
        # The products run as the forward's did: under its autocast, else in the weight's dtype.
        with torch.autocast(device, dtype=dtype, enabled=enabled):
            for rows in _chunks(hidden.shape[0], ctx.chunk_size):
                softmax = kept if kept is not None else _logits(hidden[rows], weight, bias).sub_(
                    normaliser[rows, None]).exp_()
                # d(sum_t g_t logp_t) / d logits = g * (onehot(target) - softmax), built in the softmax's place
                g = grad[rows].float()
                dlogits = softmax.mul_(-g[:, None]).scatter_add_(-1, targets[rows, None], g[:, None])
                dlogits = dlogits if enabled else dlogits.to(weight.dtype)
                if want_hidden:
                    grad_hidden[rows] = (dlogits @ weight).to(hidden.dtype)
                if want_weight:
                    grad_weight = _add_product(grad_weight, dlogits.T, hidden[rows].to(dlogits.dtype), weight.dtype)
                if want_bias and bias is not None:
                    part = dlogits.sum(0).to(bias.dtype)
                    grad_bias = part if grad_bias is None else grad_bias.add_(part)
        return grad_hidden, grad_weight, grad_bias, None, None


def _add_product(total: torch.Tensor | None, a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """total + a @ b in `dtype`; accumulated in place outside autocast, where a chunk's (V, H) product would
    otherwise be a second vocabulary-sized buffer beside the total at the backward pass's peak. Under autocast
    the product keeps autocast's dtype (its speed), as the forward's did."""
    if total is None:
        return (a @ b).to(dtype)
    if a.dtype == dtype and not torch.is_autocast_enabled(a.device.type):
        return total.addmm_(a, b)
    return total.add_((a @ b).to(dtype))


class LabelLogProbHead(nn.Linear):
    """An `nn.Linear` vocabulary head that, while a selection is set, returns target log-probs instead of logits.
    Made by `swap_in_label_logprob_head`, never constructed: it is the model's own head with another forward."""

    chunk_size: int = 1024
    selection: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # (rows, cols, targets)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.selection is None:
            return super().forward(hidden)  # (B, L, V) logits, as the plain head: generation and eval still work
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


def swap_in_label_logprob_head(model: nn.Module, chunk_size: int | None = None) -> LabelLogProbHead:
    """Make the model's vocabulary head a LabelLogProbHead in place and return it; parameters are untouched.
    `chunk_size` rows per chunk (None: about 64 MiB of logits; 0: all rows at once)."""
    head = model.get_output_embeddings()
    # A class swap, not a wrapper module: the head stays the same object at the same place, so its parameters,
    # the state dict keys (no `lm_head.inner.weight`) and embeddings tied to it stay exactly the model's, and
    # checkpoints save and load as the plain model's. Only `forward` changes.
    head.__class__ = LabelLogProbHead
    head.chunk_size = auto_chunk_rows(head.out_features) if chunk_size is None else chunk_size
    return head  # type: ignore[return-value]


def lean_head_or_none(model: nn.Module, stage: str, chunk_size: int | None = None) -> LabelLogProbHead | None:
    """`swap_in_label_logprob_head` where the lean head can serve the model; otherwise None, with a log line why."""
    reason = unsupported_reason(model)
    if reason:
        log.info("%s: full-vocabulary log-softmax over all positions, because %s", stage, reason)
        return None
    return swap_in_label_logprob_head(model, chunk_size)


@contextmanager
def returning_label_logprobs(
    head: LabelLogProbHead, rows: torch.Tensor, cols: torch.Tensor, targets: torch.Tensor
) -> Iterator[None]:
    """While open, the model's forward returns in `.logits` the (N,) log-probs of `targets` at hidden positions
    (rows, cols), not logits; on exit the head is a plain vocabulary head again."""
    head.selection = (rows, cols, targets)
    try:
        yield
    finally:
        head.selection = None
