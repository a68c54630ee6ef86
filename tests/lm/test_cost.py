"""The one cost model (stages/lm/cost.py), pinned on SmolLM2-135M's config and on configs that lack fields."""

from types import SimpleNamespace

from transformers import LlamaConfig

from stages.lm.cost import Work, forward_work


def _smollm2(**changes) -> LlamaConfig:
    fields = dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, tie_word_embeddings=True,
    )
    return LlamaConfig(**(fields | changes))


def test_smollm2_135m_multiply_adds_by_hand():
    # h = 576, 9 heads of 64 (h_q = 576), 3 key/value heads of 64 (kv = 192), ffn 1536, 30 layers, V = 49152.
    # Per token and layer: q_proj 576 * 576 = 331_776, k_proj and v_proj 2 * 576 * 192 = 221_184,
    # o_proj 576 * 576 = 331_776, MLP 3 * 576 * 1536 = 2_654_208; in all 3_538_944, times 30 layers 106_168_320.
    # A (query, key) pair: 2 * 576 = 1152 per layer, 34_560 in all. The head: 576 * 49152 = 28_311_552.
    assert forward_work(_smollm2()) == Work(token=106_168_320, pair=34_560, learned=28_311_552)
    assert forward_work(_smollm2(), head=False).learned == 0  # a reward model's one-output head is negligible


def test_grouped_query_heads_cost_less_than_full_key_value_width():
    grouped, full = forward_work(_smollm2()), forward_work(_smollm2(num_key_value_heads=9))
    # Full K/V: k_proj and v_proj 2 * 576 * 576 instead of 2 * 576 * 192, per layer.
    assert full.token - grouped.token == 30 * 2 * 576 * (576 - 192)
    assert (grouped.pair, grouped.learned) == (full.pair, full.learned)  # queries keep all 9 heads


def test_missing_fields_fall_back_to_a_plain_transformer():
    # Only the width: one layer, one head (h_q = kv = h), ffn 4h: 4 * 8 * 8 + 3 * 8 * 32 = 1024.
    assert forward_work(SimpleNamespace(hidden_size=8)) == Work(token=1024, pair=16, learned=0)
    # None means the default too (LlamaConfig's head_dim, GPT-2's n_inner).
    bare = SimpleNamespace(hidden_size=8, num_attention_heads=2, head_dim=None, num_key_value_heads=None,
                           intermediate_size=None, num_hidden_layers=None, vocab_size=10)
    assert forward_work(bare) == Work(token=1024, pair=16, learned=80)
