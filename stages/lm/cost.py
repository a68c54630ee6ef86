"""The compute of one forward pass through a decoder, counted in multiply-adds from the model's config. No torch.

Per token and per layer, with h the hidden size, h_q = heads x head_dim the query (and attention output) width,
kv = key/value heads x head_dim the key and value width (smaller than h_q under grouped-query attention), and
ffn the MLP's intermediate size:

    q_proj  h x h_q           k_proj, v_proj  h x kv each           o_proj  h_q x h
    MLP     3 x h x ffn       (gate, up and down: Llama-style SwiGLU)

so h·h_q + 2·h·kv + h_q·h + 3·h·ffn. Attention adds, per (query, key) pair and layer, the query's dot product
with the key (h_q: each query head dots its head_dim with the key head it shares) and the key's share of the
weighted sum of values (h_q again): 2·h_q. The vocabulary head adds h·V per token whose next-token
distribution is needed (a learned token); it runs once, after the last layer.

Fields a config lacks fall back to a plain transformer: head_dim to h / heads, heads to 1 (so h_q = h), key/value
heads to heads (full K/V), ffn to 4·h, layers to 1. Norms, rotary embeddings, softmax and biases are left out
(linear in h, not h²), and a non-gated MLP (2 matrices) is overstated by h·ffn: the model is for ratios between
layouts of the same model, not for absolute timings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Work:
    """Multiply-adds of one forward pass, summed over the layers: per token, per attention (query, key) pair,
    and per learned token for the vocabulary head (0 without one)."""

    token: int
    pair: int
    learned: int


def forward_work(config: Any, head: bool = True) -> Work:
    """The cost model of this module's docstring for a transformers config (or anything with its field names);
    `head`: whether the learned tokens go through a vocabulary head of `vocab_size` outputs."""
    hidden = config.hidden_size
    heads = _field(config, "num_attention_heads", 1)
    head_dim = _field(config, "head_dim", hidden // heads)
    query_width = heads * head_dim
    kv_width = _field(config, "num_key_value_heads", heads) * head_dim
    ffn = _field(config, "intermediate_size", 4 * hidden)
    per_layer = hidden * query_width + 2 * hidden * kv_width + query_width * hidden + 3 * hidden * ffn
    layers = _field(config, "num_hidden_layers", 1)
    vocab = _field(config, "vocab_size", 0) if head else 0
    return Work(token=layers * per_layer, pair=layers * 2 * query_width, learned=hidden * vocab)


def _field(config: Any, name: str, default: int) -> int:
    # Configs leave fields out or set them to None (LlamaConfig's head_dim, GPT-2's n_inner) to mean the default.
    value = getattr(config, name, None)
    return value if isinstance(value, int) and value > 0 else default
