"""Attention for packed rows `[prompt, y_1, ..., y_k]`: the prompt attends causally to itself, and each
response to the prompt and its own earlier tokens, as a batch of short sequences. So the prompt goes through
the layers once, no response ever meets another (not even behind a mask), and every kernel is a standard SDPA.

It plugs into transformers' attention interface under its own name, wrapping the model's implementation: a
forward given the `shared_prompt` layout takes this path, any other forward the wrapped one. The layout is a
forward argument, so gradient checkpointing's recomputation sees it as the first pass did.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch.nn import functional as F

PREFIX = "rrhf_shared_prompt_"
BASES = ("sdpa", "eager")  # implementations that take an ordinary mask and have no model-specific kernel
KWARG = "shared_prompt"  # the forward argument that carries a packed batch's layout
# Attention features this path does not reproduce; a model that passes one is not packed.
UNSUPPORTED = ("sliding_window", "softcap", "s_aux", "sinks")
NATIVE_GQA = torch.__version__ >= (2, 5)  # SDPA's enable_gqa: grouped heads without copies of the keys
LAYOUT_KEYS = ("response_rows", "response_index", "response_slots", "response_keys")


def layout(
    response_rows: list[int], response_cols: list[list[int]], prompt_lengths: list[int], width: int
) -> dict[str, torch.Tensor]:
    """Where each response's tokens sit in the packed batch (rows of `width` columns) and which keys each of its
    tokens may see: its row's prompt and its own earlier tokens. Responses are padded to the longest one."""
    n, longest = len(response_rows), max(map(len, response_cols), default=1)
    prompt_width = max(prompt_lengths)
    index = torch.zeros((n, longest), dtype=torch.long)
    valid = torch.zeros((n, longest), dtype=torch.bool)
    prompt_seen = torch.zeros((n, prompt_width), dtype=torch.bool)
    for i, (row, cols) in enumerate(zip(response_rows, response_cols, strict=True)):
        # Padding slots read the response's first token: their outputs are dropped and no real token sees them.
        index[i] = row * width + (cols[0] if cols else 0)
        index[i, : len(cols)] = torch.tensor(cols) + row * width
        valid[i, : len(cols)] = True
        prompt_seen[i, : prompt_lengths[row]] = True
    causal = torch.ones((longest, longest), dtype=torch.bool).tril()
    keys = torch.cat([prompt_seen[:, None, :].expand(n, longest, prompt_width), causal.expand(n, -1, -1)], dim=-1)
    return {
        "response_rows": torch.tensor(response_rows, dtype=torch.long),  # (N,)
        "response_index": index.view(-1),  # (N * L,) flat positions in (B * T)
        "response_slots": valid.view(-1).nonzero().squeeze(-1),  # (M,) the real slots among N * L
        "response_keys": keys[:, None],  # (N, 1, L, P + L) bool
    }


def install(model: Any) -> str | None:
    """Route `model`'s attention through this path (other forwards are unchanged); the reason if it cannot."""
    base = model.config._attn_implementation
    if base is not None and base.startswith(PREFIX):
        return None
    if base not in BASES:
        return f"{base} attention has no shared-prompt path"
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    name = PREFIX + base
    AttentionInterface.register(name, _wrapping(base))
    AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base])
    model.set_attn_implementation(name)
    return None


def check_installed(model: Any) -> None:
    """Raise unless `model` routes its attention through this path (a wrapper without a config passes)."""
    config = getattr(model, "config", None)
    name = getattr(config, "_attn_implementation", None) if config is not None else PREFIX
    if not (isinstance(name, str) and name.startswith(PREFIX)):
        raise ValueError("a packed batch needs the shared-prompt attention: shared_prompt.install(model) first")


def uninstall(model: Any) -> None:
    """Give `model` back its own attention implementation."""
    name = model.config._attn_implementation
    if name is not None and name.startswith(PREFIX):
        model.set_attn_implementation(name.removeprefix(PREFIX))


def _wrapping(base: str) -> Any:
    def attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: torch.Tensor | None, **kwargs: Any) -> tuple[torch.Tensor, None]:
        packed = kwargs.pop(KWARG, None)
        if packed is None:
            return _base_attention(module, base)(module, query, key, value, attention_mask, **kwargs)
        return shared_prompt_attention(module, query, key, value, packed, **kwargs), None

    return attention


def _base_attention(module: torch.nn.Module, base: str) -> Any:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if base == "eager":  # eager is each model's own function, beside its attention class
        return sys.modules[type(module).__module__].eager_attention_forward
    return ALL_ATTENTION_FUNCTIONS[base]


def shared_prompt_attention(
    module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
    packed: dict[str, torch.Tensor], scaling: float | None = None, dropout: float = 0.0, **kwargs: Any,
) -> torch.Tensor:
    """(B, T, H, D) attention output of packed rows; query (B, H, T, D), key and value (B, H_kv, T, D)."""
    for name in UNSUPPORTED:
        if kwargs.get(name) is not None:
            raise ValueError(f"shared-prompt attention does not support {name}")
    batch, heads, width, dim = query.shape
    groups = heads // key.shape[1]
    gqa = {"enable_gqa": True} if groups > 1 and NATIVE_GQA else {}
    dropout = dropout if module.training else 0.0
    keys_mask = packed["response_keys"]
    longest = keys_mask.shape[-2]
    prompt_width = keys_mask.shape[-1] - longest
    n = packed["response_rows"].shape[0]

    def expand(states: torch.Tensor) -> torch.Tensor:  # grouped-query heads: SDPA's own, or copies before 2.5
        return states.repeat_interleave(groups, dim=1) if groups > 1 and not gqa else states

    def prompts(states: torch.Tensor) -> torch.Tensor:  # a copy, so the backward pass keeps the prompt part only
        return expand(states[:, :, :prompt_width].contiguous())

    # Prompts: plain causal attention over the rows' first columns. In a row whose prompt is shorter than the
    # widest, the columns after it are that row's responses; their outputs are replaced below.
    prompt_out = F.scaled_dot_product_attention(
        query[:, :, :prompt_width].contiguous(), prompts(key), prompts(value), dropout_p=dropout, is_causal=True,
        scale=scaling, **gqa,
    )  # (B, H, P, D)

    def responses(states: torch.Tensor) -> torch.Tensor:  # (B, h, T, D) -> (N, h, L, D)
        flat = states.transpose(1, 2).reshape(batch * width, states.shape[1], dim)
        return flat.index_select(0, packed["response_index"]).view(n, longest, -1, dim).transpose(1, 2)

    def with_prompt(states: torch.Tensor) -> torch.Tensor:  # each response's keys: its prompt's, then its own
        prompt = states[:, :, :prompt_width].index_select(0, packed["response_rows"])
        return expand(torch.cat([prompt, responses(states)], dim=2))

    response_out = F.scaled_dot_product_attention(
        responses(query), with_prompt(key), with_prompt(value), attn_mask=keys_mask, dropout_p=dropout,
        scale=scaling, **gqa,
    )  # (N, H, L, D)
    out = F.pad(prompt_out.transpose(1, 2), (0, 0, 0, 0, 0, width - prompt_width)).reshape(batch * width, heads, dim)
    slots = packed["response_slots"]
    real = response_out.transpose(1, 2).reshape(n * longest, heads, dim).index_select(0, slots)
    out = out.index_copy(0, packed["response_index"].index_select(0, slots), real)
    return out.view(batch, width, heads, dim)
