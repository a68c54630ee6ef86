"""`rrhf sample` with the transformers backend: every strategy end to end, reproducibility, prefill-once
equal to the plain path, diverse beam search checked against greedy and beam search, prompt cuts, stops."""

import json

import pytest
import torch

from stages.lm.kv_cache import generate_k, left_pad
from stages.sample.config import SampleConfig
from stages.sample.diverse_beam import group_beam_search
from stages.sample.hf import HfSampler
from tests.conftest import read_jsonl

PROMPTS = [
    {"id": "tea", "prompt": "How do I make a cup of tea?", "topic": "kitchen"},
    {"id": "syn", "prompt": "Give me a synonym for happy."},
    {"id": "chat", "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}]},
    {"id": "long", "prompt": "The quick brown fox jumps over the lazy dog. " * 3},
    {"id": "one", "prompt": "a"},
]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sampler(tiny_models):
    """One loaded tiny policy; tests change its settings through `sampler.config`."""
    return HfSampler(SampleConfig(model=str(tiny_models.policy), k=3, max_new_tokens=6))


def _batch(sampler, texts):
    ids = [sampler.tokenizer(t)["input_ids"] for t in texts]
    return left_pad(ids, sampler.pad_id, "cpu")


@pytest.mark.parametrize(
    "settings",
    [
        {"strategy": "sample", "temperature": 0.8, "top_p": 0.9},
        {"strategy": "sample", "temperature": 1.3, "top_p": 1.0, "stop": ["e"]},
        {"strategy": "beam"},
    ],
)
@pytest.mark.parametrize("texts", [["a", "Hello there, how are you", "Reward models score"], ["Just one prompt"]])
def test_prefill_once_gives_the_tokens_of_num_return_sequences(sampler, settings, texts):
    sampler.config = SampleConfig(model="m", k=4, max_new_tokens=10, **settings)
    input_ids, mask = _batch(sampler, texts)
    kwargs = sampler.generate_kwargs()
    outputs = []
    for prefill_once in (False, True):
        torch.manual_seed(123)
        outputs.append(generate_k(sampler.model, input_ids, mask, prefill_once=prefill_once, **kwargs))
    plain, once = outputs
    assert plain.shape[0] == len(texts) * 4
    assert torch.equal(plain, once)
    if settings["strategy"] == "sample":  # a different seed really changes the draw
        torch.manual_seed(124)
        assert not torch.equal(plain, generate_k(sampler.model, input_ids, mask, **kwargs))


def test_diverse_beam_without_penalty_is_greedy_in_every_group(sampler):
    input_ids, mask = _batch(sampler, ["a", "The quick brown fox", "Hello there"])
    greedy = sampler.model.generate(
        input_ids=input_ids, attention_mask=mask, do_sample=False, max_new_tokens=8, pad_token_id=sampler.pad_id
    )[:, input_ids.shape[1] :].tolist()
    groups = group_beam_search(sampler.model, input_ids, mask, 3, 1, 8, 0.0, 1.0, eos=sampler.eos)
    assert groups == [[row] * 3 for row in greedy]


def test_diverse_beam_with_one_group_is_beam_search(sampler):
    input_ids, mask = _batch(sampler, ["a", "The quick brown fox", "Hello there"])
    beam = sampler.model.generate(
        input_ids=input_ids,
        attention_mask=mask,
        do_sample=False,
        num_beams=3,
        max_new_tokens=8,
        pad_token_id=sampler.pad_id,
    )[:, input_ids.shape[1] :].tolist()
    groups = group_beam_search(sampler.model, input_ids, mask, 1, 3, 8, 0.0, 1.0, eos=sampler.eos)
    assert [g[0] for g in groups] == beam


def test_diverse_beam_penalty_makes_groups_start_differently(sampler):
    input_ids, mask = _batch(sampler, ["a", "The quick brown fox", "Hello there"])
    for width in (1, 2):
        groups = group_beam_search(sampler.model, input_ids, mask, 4, width, 6, 100.0, 1.0, eos=sampler.eos)
        for per_prompt in groups:
            assert len(per_prompt) == 4
            assert len({seq[0] for seq in per_prompt}) == 4  # a penalty of 100 outweighs any log-prob gap


def test_an_end_token_finishes_a_diverse_beam_hypothesis(sampler):
    input_ids, mask = _batch(sampler, ["Hello there"])
    free = group_beam_search(sampler.model, input_ids, mask, 2, 1, 6, 0.0, 1.0, eos=sampler.eos)[0][0]
    # Declare the greedy path's third token an end token: the hypothesis must stop right before it.
    ended = group_beam_search(sampler.model, input_ids, mask, 2, 1, 6, 0.0, 1.0, eos={free[2]})[0][0]
    assert ended == free[:2]


@pytest.mark.parametrize("strategy", ["sample", "beam", "diverse-beam"])
def test_each_strategy_end_to_end_and_reproducible(strategy, tiny_models, tmp_path, write_jsonl, cli):
    src = write_jsonl("prompts.jsonl", PROMPTS)
    common = ["--model", tiny_models.policy, "-k", "3", "--max-new-tokens", "5", "--strategy", strategy]
    runs = []
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        out = tmp_path / f"{name}.jsonl"
        result = cli("sample", src, "-o", out, *common, "--seed", seed, "--batch-size", "2", "--source", "policy")
        assert result.exit_code == 0, result.stderr
        runs.append(read_jsonl(out))
    first = runs[0]
    assert [r["id"] for r in first] == [p["id"] for p in PROMPTS]  # input order, though batched by length
    assert first[0]["topic"] == "kitchen" and first[2]["prompt"] == PROMPTS[2]["prompt"]
    for record in first:
        assert len(record["responses"]) == 3
        assert {r["source"] for r in record["responses"]} == {"policy"}
    assert runs[0] == runs[1]
    if strategy == "sample":
        assert runs[0] != runs[2]
    else:  # searches use no randomness
        assert runs[0] == runs[2]
    if strategy == "diverse-beam":
        assert any(len({r["text"] for r in rec["responses"]}) > 1 for rec in first)
    meta = json.loads((tmp_path / "a.jsonl.meta.json").read_text())
    assert meta["counts"]["prompts_sampled"] == 5 and meta["counts"]["responses_sampled"] == 15
    assert meta["config"]["max_new_tokens"] == 5 and meta["config"]["strategy"] == strategy


def test_max_prompt_tokens_keeps_the_end_of_the_prompt_and_counts_cuts(
    sampler, tiny_models, tmp_path, cli, write_jsonl
):
    sampler.config = SampleConfig(model="m", k=1, temperature=0, max_new_tokens=6)
    tokenizer = sampler.tokenizer
    texts = ["short", "The quick brown fox jumps over the lazy dog", "Please answer politely and honestly."]
    lengths = [len(tokenizer(t)["input_ids"]) for t in texts]
    limit = 6
    assert sorted(lengths)[0] <= limit < sorted(lengths)[-1]
    src = write_jsonl("p.jsonl", [{"id": str(i), "prompt": t} for i, t in enumerate(texts)])
    out = tmp_path / "s.jsonl"
    args = ["--model", tiny_models.policy, "-k", "1", "--temperature", "0", "--max-new-tokens", "6"]
    result = cli("sample", src, "-o", out, *args, "--max-prompt-tokens", str(limit))
    assert result.exit_code == 0, result.stderr
    meta = json.loads((tmp_path / "s.jsonl.meta.json").read_text())
    assert meta["counts"]["prompts_truncated"] == sum(1 for n in lengths if n > limit)
    assert meta["config"]["max_prompt_tokens"] == limit
    for text, row in zip(texts, read_jsonl(out), strict=True):
        kept = tokenizer(text)["input_ids"][-limit:]
        input_ids, mask = left_pad([kept], sampler.pad_id, "cpu")
        greedy = sampler.model.generate(
            input_ids=input_ids, attention_mask=mask, do_sample=False, max_new_tokens=6, pad_token_id=sampler.pad_id
        )[0, input_ids.shape[1] :].tolist()
        expected = sampler.decode(greedy)
        assert (row["responses"][0]["text"], row["responses"][0]["finish_reason"]) == (
            expected.text, expected.finish_reason)
    # Six tokens cut every answer of the tiny model: each says so, for training to learn no end there, and the
    # meta counts them and the log warns (more than half were cut).
    assert {row["responses"][0]["finish_reason"] for row in read_jsonl(out)} == {"length"}
    assert meta["counts"]["responses_cut"] == 3
    assert "3 of 3 responses reached --max-new-tokens 6" in result.stderr


def test_stop_strings_cut_every_response(tiny_models, tmp_path, write_jsonl, cli):
    src = write_jsonl("p.jsonl", PROMPTS)
    for strategy in ("sample", "diverse-beam"):
        out = tmp_path / f"{strategy}.jsonl"
        args = ["--model", tiny_models.policy, "-k", "2", "--max-new-tokens", "12", "--stop", "e", "--stop", "o"]
        assert cli("sample", src, "-o", out, *args, "--strategy", strategy).exit_code == 0
        texts = [r["text"] for row in read_jsonl(out) for r in row["responses"]]
        assert len(texts) == 10 and not any("e" in t or "o" in t for t in texts)
        cut = [r["finish_reason"] == "length" for row in read_jsonl(out) for r in row["responses"]]
        assert json.loads(out.with_name(out.name + ".meta.json").read_text())["counts"]["responses_cut"] == sum(cut)


def test_a_missing_model_folder_is_one_line_and_leaves_nothing_behind(tmp_path, write_jsonl, cli):
    out = tmp_path / "s.jsonl"
    result = cli("sample", write_jsonl("p.jsonl", PROMPTS), "-o", out, "--model", str(tmp_path / "no-such-model"))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"rrhf: error: --model {tmp_path / 'no-such-model'}: no such folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl"]


def test_temperature_zero_gives_k_copies_of_the_greedy_answer(sampler):
    from stages.sample.backends import SampleRequest

    sampler.config = SampleConfig(model="m", k=3, temperature=0, max_new_tokens=6)
    [result] = sampler.sample([SampleRequest("x", "Hello there", 1)], batch_seed=5)
    input_ids, mask = _batch(sampler, ["Hello there"])
    greedy = sampler.model.generate(
        input_ids=input_ids, attention_mask=mask, do_sample=False, max_new_tokens=6, pad_token_id=sampler.pad_id
    )[0, input_ids.shape[1] :].tolist()
    assert result == [sampler.decode(greedy)] * 3


# Words, digits, punctuation, runs of spaces and newlines and non-ASCII text: where a window's start may land.
VARIED = "".join(
    f"Line {i}: the   quick brown fox ({i * 7919 % 1000}) jumps-over the lazy dog, naïve café — 東京 {'!' * (i % 4)}"
    + ("\n\n" if i % 3 else "\n")
    for i in range(120)
)


@pytest.mark.parametrize("limit", [1, 2, 5, 17, 64, 200, 900, 10_000])
@pytest.mark.parametrize("shape", ["string", "messages"])
def test_a_prompt_cut_from_its_text_end_keeps_the_tokens_of_the_whole_texts_cut(sampler, limit, shape):
    from stages.contract.schema import Record
    from stages.lm.prompts import cut_left, render_ids, render_tail

    tokenizer = sampler.tokenizer
    raw = VARIED if shape == "string" else [{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": VARIED}]
    prompt = Record.model_validate({"id": "x", "prompt": raw}).prompt
    whole = render_ids(tokenizer, prompt)
    assert render_tail(tokenizer, prompt, limit) == (cut_left(whole, limit), len(whole) > limit)
    for start in range(0, len(VARIED), 97):  # windows starting anywhere in the text
        text = VARIED[start:]
        assert render_tail(tokenizer, text, limit)[0] == cut_left(render_ids(tokenizer, text), limit), start


def test_a_huge_prompt_is_not_tokenised_whole(tiny_models, monkeypatch):
    from stages.lm.prompts import cut_left, render_ids
    from stages.sample.backends import SampleRequest

    huge = VARIED * 200  # about 2 MB: tokenised whole, a 50 MB prompt took over 10 GB
    messages = [{"role": "user", "content": huge}]
    sampler = HfSampler(SampleConfig(model=str(tiny_models.policy), k=1, temperature=0, max_new_tokens=4,
                                     max_prompt_tokens=64))
    kept = [cut_left(render_ids(sampler.tokenizer, p), 64) for p in (huge, _messages(messages))]
    tokenised: list[int] = []
    call = type(sampler.tokenizer).__call__

    def counting(self, text, *args, **kwargs):
        tokenised.append(len(text))
        return call(self, text, *args, **kwargs)

    monkeypatch.setattr(type(sampler.tokenizer), "__call__", counting)
    assert sampler.prompt_lengths([huge, _messages(messages)]) == [65, 65]  # cut: one more than the limit
    results = sampler.sample([SampleRequest("s", huge, 1), SampleRequest("m", _messages(messages), 1)], 0)
    assert tokenised and max(tokenised) < 2_000
    monkeypatch.undo()
    for ids, result in zip(kept, results, strict=True):
        input_ids, mask = left_pad([ids], sampler.pad_id, "cpu")
        greedy = sampler.model.generate(
            input_ids=input_ids, attention_mask=mask, do_sample=False, max_new_tokens=4, pad_token_id=sampler.pad_id
        )[0, input_ids.shape[1] :].tolist()
        assert result == [sampler.decode(greedy)]


def _messages(raw):
    from stages.contract.schema import Record

    return Record.model_validate({"id": "x", "prompt": raw}).prompt


def test_a_prompt_longer_than_the_context_is_cut_to_fit_with_a_warning(tiny_models, tmp_path, write_jsonl, cli):
    from transformers import AutoConfig, AutoTokenizer

    from stages.sample.hf import context_length

    tokenizer = AutoTokenizer.from_pretrained(tiny_models.policy)
    context = context_length(AutoConfig.from_pretrained(tiny_models.policy))
    assert context == 1024
    text = " ".join(f"w{i % 50}" for i in range(3000))
    assert len(tokenizer(text)["input_ids"]) > 5 * context
    src = write_jsonl("p.jsonl", [{"id": "long", "prompt": text}, {"id": "short", "prompt": "Hello there"}])
    out = tmp_path / "s.jsonl"
    args = ["--model", tiny_models.policy, "-k", "1", "--temperature", "0", "--max-new-tokens", "4"]
    result = cli("sample", src, "-o", out, *args)
    assert result.exit_code == 0, result.stderr
    warning = "1 prompts are longer than the model's context leaves room for (1020 tokens with --max-new-tokens 4)"
    assert warning in result.stderr
    meta = json.loads((tmp_path / "s.jsonl.meta.json").read_text())
    assert meta["counts"]["prompts_truncated"] == 1
    model = HfSampler(SampleConfig(model=str(tiny_models.policy), k=1, temperature=0, max_new_tokens=4))
    assert model.prompt_limit == 1020
    kept = tokenizer(text)["input_ids"][-1020:]
    input_ids, mask = left_pad([kept], model.pad_id, "cpu")
    greedy = model.model.generate(
        input_ids=input_ids, attention_mask=mask, do_sample=False, max_new_tokens=4, pad_token_id=model.pad_id
    )[0, input_ids.shape[1] :].tolist()
    assert read_jsonl(out)[0]["responses"][0]["text"] == model.decode(greedy).text

    # --max-prompt-tokens below the room is the user's own cut: counted, not warned about.
    result = cli("sample", src, "-o", out, *args, "--max-prompt-tokens", "100", "--force")
    assert result.exit_code == 0 and "context" not in result.stderr


def test_infinite_temperature_is_refused(cli, write_jsonl, tmp_path):
    src = write_jsonl("p.jsonl", PROMPTS)
    for value in ("inf", "nan"):
        result = cli("sample", src, "-o", tmp_path / "s.jsonl", "--model", "m", "--temperature", value)
        assert result.exit_code == 2
        assert result.stderr.strip() == "rrhf: error: invalid settings: --temperature: input should be a finite number"
