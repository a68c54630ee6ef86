"""Model FLOPs of a training step from the one cost model (`stages.lm.cost.forward_work`), for every trainer alike,
and this machine's fp32 matmul peak to hold them against. Recomputation under gradient checkpointing is not
counted: the figure is the work the model needs, so a trainer that recomputes shows it as a lower share of peak.

A training step costs three forward passes of multiply-adds (the forward, and a backward of about twice that) and
a multiply-add is two FLOPs: 6 FLOPs per multiply-add. A reference model's forward adds 2 per multiply-add.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from stages.lm.cost import Work

Layout = Literal["packed", "unpacked", "full-logits"]


def forward_macs(prompt: int, answers: Sequence[int], work: Work, layout: Layout) -> int:
    """Multiply-adds of one forward over a prompt of `prompt` tokens and its answers of `answers` tokens each.

    packed: one sequence, the prompt once, each answer attending to the prompt and itself (padded to the longest,
    as the packed batch is); unpacked: one sequence per answer, the vocabulary head at the answer's tokens only (as
    rrhf's lean head runs); full-logits: one sequence per answer with the head at every position (as TRL's
    trainers compute logits). Attention counts every (query, key) pair of a square, as SDPA computes it.

    >>> w = Work(token=10, pair=1, learned=100)
    >>> forward_macs(4, [2, 2], w, "unpacked"), forward_macs(4, [2, 2], w, "packed")
    (592, 520)
    >>> forward_macs(4, [2], w, "full-logits")
    696
    """
    if layout == "packed":
        longest = max(answers, default=0)
        pairs = prompt * prompt + len(answers) * longest * (prompt + longest)
        return (prompt + sum(answers)) * work.token + pairs * work.pair + sum(answers) * work.learned
    total = 0
    for answer in answers:
        n = prompt + answer
        head_tokens = n if layout == "full-logits" else answer
        total += n * work.token + n * n * work.pair + head_tokens * work.learned
    return total


def train_flops(examples: Sequence[tuple[int, Sequence[int]]], work: Work, layout: Layout,
                reference: bool = False) -> float:
    """Model FLOPs of training on `examples` (prompt tokens, answer tokens), with a reference forward if `reference`.

    >>> train_flops([(4, [2])], Work(token=10, pair=1, learned=100), "full-logits", reference=True)
    5568.0
    """
    macs = sum(forward_macs(prompt, answers, work, layout) for prompt, answers in examples)
    return float(macs * (6 + (2 if reference else 0)))


def matmul_peak(size: int = 2048, repeats: int = 10) -> float:
    """This machine's fp32 matmul FLOP/s as torch reaches it with its threads: the best of `repeats` products of two
    size x size matrices (2·size³ FLOPs each)."""
    import time

    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm-up: thread pool and kernel selection
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best
