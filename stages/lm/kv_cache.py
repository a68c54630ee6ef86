"""Decoding helpers around the KV cache: left-padded prompt batches, position ids, prefilling a prompt once."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def left_pad(prompt_ids: list[list[int]], pad_id: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (B, T), padded on the left so every prompt ends at the last column."""
    import torch

    width = max(len(ids) for ids in prompt_ids)
    input_ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for row, ids in enumerate(prompt_ids):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        mask[row, width - len(ids) :] = 1
    return input_ids.to(device), mask.to(device)


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each prompt's first real token, as `generate` computes them."""
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)


def cache_kwarg(model: Any) -> str:
    """The name the model's forward takes its KV cache under (`cache` in transformers 5, else `past_key_values`)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def prefill(model: Any, input_ids: torch.Tensor, mask: torch.Tensor) -> Any:
    """Run the prompts once and return the forward output holding the cache and the last position's logits."""
    extra = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    return model(input_ids=input_ids, attention_mask=mask, position_ids=positions(mask), use_cache=True, **extra)


def generate_k(
    model: Any, input_ids: torch.Tensor, mask: torch.Tensor, prefill_once: bool = True, **generate_kwargs: Any
) -> torch.Tensor:
    """`generate` with `num_return_sequences` k (and `num_beams` k for beam search): (B * k, T + new) tokens.

    With `prefill_once`, all but the last prompt token go through the model once per prompt and the KV
    cache is copied k ways; `generate` then only runs the last token for each copy. The decoding steps,
    logits processors and random draws are those of the plain path, so a fixed seed gives the same tokens.
    """
    import torch

    expand = max(generate_kwargs.get("num_beams", 1), generate_kwargs.get("num_return_sequences", 1))
    with torch.no_grad():
        if not prefill_once or input_ids.shape[1] < 2 or expand == 1:
            return model.generate(input_ids=input_ids, attention_mask=mask, **generate_kwargs)
        name = cache_kwarg(model)
        cache = prefill(model, input_ids[:, :-1], mask[:, :-1])[name]
        # Same row order as generate's own expansion (repeat_interleave): prompt 0's k copies, then prompt 1's.
        cache.batch_repeat_interleave(expand)
        return model.generate(input_ids=input_ids, attention_mask=mask, **{name: cache}, **generate_kwargs)
