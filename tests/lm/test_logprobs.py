"""Packed and unpacked batches, lean and naive heads: the same per-response log-probs on a real tiny model."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from stages.lm import shared_prompt
from stages.lm.head import label_logprobs, swap_in_label_logprob_head, unsupported_reason
from stages.lm.logprobs import response_logprobs
from stages.lm.packing import Query, collate, compute_estimate, packing_verdict, token_counts
from stages.lm.queries import fit
from tests.conftest import direct_logprobs


def _queries():
    g = torch.Generator().manual_seed(0)

    def ids(n):
        return torch.randint(10, 300, (n,), generator=g).tolist()

    return [
        Query(prompt=ids(9), responses=[ids(3), ids(5), ids(1)], rewards=[0.0, 1.0, 2.0]),
        Query(prompt=ids(4), responses=[ids(6), ids(2)], rewards=[1.0, -1.0]),
    ]


def _direct(model, queries):
    """Reference: each prompt + response alone, full log-softmax, summed over the response tokens."""
    return torch.stack([direct_logprobs(model, q.prompt, r).sum() for q in queries for r in q.responses])


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_packed_unpacked_lean_naive_all_match_direct(tiny_models, attn):
    model = AutoModelForCausalLM.from_pretrained(tiny_models.policy, attn_implementation=attn).float().eval()
    queries = _queries()
    with torch.no_grad():
        expected = _direct(model, queries)
        assert shared_prompt.install(model) is None
        naive = {p: response_logprobs(model, collate(queries, 0, packed=p), None) for p in (False, True)}
        head = swap_in_label_logprob_head(model, chunk_size=4)
        lean = {p: response_logprobs(model, collate(queries, 0, packed=p), head) for p in (False, True)}
    for result in (*naive.values(), *lean.values()):
        torch.testing.assert_close(result, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_packed_lean_gradients_equal_unpacked_naive(tiny_models, checkpointing):
    queries = _queries()
    grads = []
    for fast in (False, True):
        model = AutoModelForCausalLM.from_pretrained(tiny_models.policy).float().train()
        if checkpointing:  # the backward pass recomputes each layer, layout included
            # transformers 5.25 renamed it; the old name still works before that and warns after
            enable = getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)
            enable({"use_reentrant": False})
        if fast:
            shared_prompt.install(model)
        head = swap_in_label_logprob_head(model, chunk_size=3) if fast else None
        response_logprobs(model, collate(queries, 0, packed=fast), head).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_packed_batch_without_the_attention_is_refused(tiny_models):
    model = AutoModelForCausalLM.from_pretrained(tiny_models.policy).float()
    with pytest.raises(ValueError, match="shared-prompt"):
        response_logprobs(model, collate(_queries(), 0, packed=True), None)


@pytest.mark.parametrize("chunk", [0, 4])
def test_label_logprobs_under_bf16_autocast_keep_fp32_outputs_and_dtypes(chunk):
    torch.manual_seed(0)
    hidden, weight = torch.randn(10, 8, requires_grad=True), torch.randn(50, 8, requires_grad=True)
    targets = torch.randint(0, 50, (10,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = label_logprobs(hidden, weight, None, targets, chunk)
    out.sum().backward()
    expected = torch.log_softmax(hidden @ weight.T, -1).gather(-1, targets[:, None]).squeeze(-1)
    assert out.dtype == torch.float32 and hidden.grad.dtype == weight.grad.dtype == torch.float32
    torch.testing.assert_close(out, expected.detach(), atol=0.1, rtol=0.05)  # bf16 products
    grads = torch.autograd.grad(expected.sum(), (hidden, weight))
    torch.testing.assert_close(hidden.grad, grads[0], atol=0.1, rtol=0.05)
    torch.testing.assert_close(weight.grad, grads[1], atol=0.1, rtol=0.05)


def test_head_keeps_its_state_dict_and_plain_forward(tiny_models):
    model = AutoModelForCausalLM.from_pretrained(tiny_models.policy).float()
    ids = torch.tensor([[5, 6, 7]])
    before = model(ids).logits
    keys = set(model.state_dict())
    swap_in_label_logprob_head(model, 16)
    assert set(model.state_dict()) == keys
    torch.testing.assert_close(model(ids).logits, before)
    assert unsupported_reason(model) is None


def test_chunked_label_logprobs_equal_one_shot():
    torch.manual_seed(0)
    hidden, weight = torch.randn(10, 8), torch.randn(50, 8)
    targets = torch.randint(0, 50, (10,))
    expected = torch.log_softmax(hidden @ weight.T, -1).gather(-1, targets[:, None]).squeeze(-1)
    for chunk in (0, 3, 10, 64):
        torch.testing.assert_close(label_logprobs(hidden, weight, None, targets, chunk), expected)


@pytest.mark.parametrize("chunk", [0, 3, 10, 64])
def test_label_logprobs_gradients_equal_autograd_of_log_softmax(chunk):
    torch.manual_seed(0)
    hidden, weight, bias = torch.randn(10, 8), torch.randn(50, 8), torch.randn(50)
    targets, upstream = torch.randint(0, 50, (10,)), torch.randn(10)
    grads = []
    for lean in (False, True):
        inputs = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
        if lean:
            out = label_logprobs(*inputs, targets, chunk)
        else:
            out = torch.log_softmax(inputs[0] @ inputs[1].T + inputs[2], -1).gather(-1, targets[:, None]).squeeze(-1)
        (out * upstream).sum().backward()
        grads.append([t.grad for t in inputs])
    for lean, naive in zip(*grads, strict=True):
        torch.testing.assert_close(lean, naive)


def test_packed_layout_lets_each_response_see_the_prompt_and_itself():
    batch = collate([Query(prompt=[1, 2], responses=[[3, 4], [5]], rewards=[0, 1])], 0, packed=True)
    # Keys of each response, padded to 2 tokens: p0 p1 | own 0, own 1.
    assert batch["response_keys"][:, 0].int().tolist() == [
        [[1, 1, 1, 0], [1, 1, 1, 1]],  # a0 sees p0 p1 a0; a1 also a1
        [[1, 1, 1, 0], [1, 1, 1, 1]],  # b0 sees p0 p1 b0; the padding slot is dropped
    ]
    assert batch["response_index"].tolist() == [2, 3, 4, 4] and batch["response_slots"].tolist() == [0, 1, 2]
    assert "attention_mask" not in batch
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 2]]
    assert batch["gather_cols"].tolist() == [1, 2, 1]  # a0 from p1, a1 from a0, b0 from p1
    assert batch["end_cols"].tolist() == [3, 4]  # a1 and b0 end their responses
    unpacked = collate([Query(prompt=[1, 2], responses=[[3, 4], [5]], rewards=[0, 1])], 0, packed=False)
    assert unpacked["end_rows"].tolist() == [0, 1] and unpacked["end_cols"].tolist() == [3, 2]
    assert token_counts([Query(prompt=[1, 2], responses=[[3, 4], [5]], rewards=[0, 1])]) == (7, 5)


def test_fit_left_truncates_prompt_then_cuts_responses():
    prompt, responses, cut = fit(list(range(10)), [[1] * 3, [2] * 2], max_length=8)
    assert prompt == list(range(5, 10)) and responses == [[1] * 3, [2] * 2] and cut == (True, 0)
    prompt, responses, cut = fit(list(range(10)), [[1] * 7], max_length=8)
    assert prompt == list(range(6, 10)) and responses == [[1] * 4] and cut == (True, 1)
    assert fit([1, 2], [[3]], 8) == ([1, 2], [[3]], (False, 0))


def test_compute_estimate_counts_tokens_attention_pairs_and_the_head():
    from types import SimpleNamespace

    # per layer and token 4 * 1 + 3 * 1 * 2 = 10 multiply-adds; a (query, key) pair 2 of them; the head 50 over 2 layers
    # (no head fields: one head with full K/V, so the grouped-query count is the old 4h^2 one and no number changed)
    config = SimpleNamespace(hidden_size=1, intermediate_size=2, vocab_size=50, num_hidden_layers=2)
    query = Query(prompt=[1] * 6, responses=[[2] * 6, [3] * 6], rewards=[0, 1])
    unpacked, packed = compute_estimate([query], config, head=False)
    assert unpacked == pytest.approx(2 * (12 + 144 * 0.2))  # two rows of 12
    # 18 tokens; the prompt attends to itself (36 pairs), each response to the prompt and itself (2 * 6 * 12)
    assert packed == pytest.approx(18 + 180 * 0.2)
    with_head = compute_estimate([query], config, head=True)
    assert with_head == pytest.approx((unpacked + 12 * 2.5, packed + 12 * 2.5))  # 12 learned tokens, either way


def test_auto_packing_weighs_the_saving():
    from types import SimpleNamespace

    def agreeing_probe(batch):
        return torch.zeros(len(batch["lengths"]))

    def model(hidden, attention="sdpa"):  # a reward model: no vocabulary head; sets its attention as transformers'
        config = SimpleNamespace(hidden_size=hidden, _attn_implementation=attention)
        return SimpleNamespace(
            config=config, set_attn_implementation=lambda name: setattr(config, "_attn_implementation", name)
        )

    # A 32-token prompt and four responses of 128: packing saves 15% of the tokens, more of the attention.
    light = [Query(prompt=[1] * 32, responses=[[2] * 128] * 4, rewards=[0, 1, 2, 3])]
    assert packing_verdict(light, "auto", "t", agreeing_probe, model(256))
    # A 4-token prompt saves 2%: not worth a different layout, unless asked for.
    tiny_prompt = [Query(prompt=[1] * 4, responses=[[2] * 128] * 4, rewards=[0, 1, 2, 3])]
    assert not packing_verdict(tiny_prompt, "auto", "t", agreeing_probe, model(256))
    assert packing_verdict(tiny_prompt, "on", "t", agreeing_probe, model(256))
    assert not packing_verdict(light, "on", "t", agreeing_probe, model(256, "flash_attention_2"))


def test_shared_prompt_attention_refuses_what_it_does_not_reproduce():
    states = torch.zeros(1, 1, 3, 2)
    with pytest.raises(ValueError, match="sliding_window"):
        shared_prompt.shared_prompt_attention(torch.nn.Module(), states, states, states, {}, sliding_window=4)


def test_a_response_the_token_limit_cut_is_read_without_an_end(tiny_models):
    """One text twice, ended and cut (finish_reason "length"): the cut one's ids lack the EOS, so it counts one
    token fewer and its summed log-prob lacks log p(EOS) < 0, so it is the higher."""
    from stages.contract.schema import Record
    from stages.lm.policy import PolicyLogprobs
    from stages.lm.queries import response_ids

    policy = PolicyLogprobs(str(tiny_models.policy), 64, 2)
    ids = policy.tokenizer("so then we", add_special_tokens=False)["input_ids"]
    eos = policy.tokenizer.eos_token_id
    assert response_ids(policy.tokenizer, ["so then we"] * 2, [True, False]) == [[*ids, eos], ids]
    record = Record(id="r", prompt="Go on:", responses=[{"text": "so then we"},
                                                         {"text": "so then we", "finish_reason": "length"}])
    (ended, cut), lengths = (values[0] for values in policy.sums([record]))
    assert lengths == [len(ids) + 1, len(ids)]
    assert cut > ended
