"""`rrhf score --scorer logprob` and `--scorer reward-model` on tiny models, against a plain forward."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from tests.conftest import chat_ids, direct_logprobs, prompt_ids, read_jsonl


def _answer_logprobs(model_dir: str, samples: Path) -> list[list]:
    """Per record, each response's per-token log-probs (its EOS included) under the model, by a plain forward."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).float().eval()

    def answer(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]

    return [[direct_logprobs(model, prompt_ids(tokenizer, sample["prompt"]), answer(r["text"]))
             for r in sample["responses"]] for sample in read_jsonl(samples)]


def test_logprob_equals_a_direct_computation(tiny_models, samples, tmp_path, cli):
    out = tmp_path / "scored.jsonl"
    result = cli("score", samples, "-o", out, "--scorer", "logprob", "--model", tiny_models.policy)
    assert result.exit_code == 0, result.stderr
    for logprobs, row in zip(_answer_logprobs(tiny_models.policy, samples), read_jsonl(out), strict=True):
        expected = [logp.mean().item() for logp in logprobs]
        assert [r["score"] for r in row["responses"]] == pytest.approx(expected, abs=1e-5)


def test_logprob_sum_as_a_reference_keeps_score_and_pairs(tiny_models, samples, write_jsonl, tmp_path, cli):
    """`--length-penalty 0 --as ref --keep-score`: each response's summed log-prob under scores.ref (what `rrhf
    train --reference ref` reads), its `score` and the record's rank pairs as they were."""
    ranked = write_jsonl("ranked.jsonl", [
        {**sample, "pairs": [[1, 0]], "responses": [r | {"score": float(i)} for i, r in enumerate(sample["responses"])]}
        for sample in read_jsonl(samples)
    ])
    out = tmp_path / "with-ref.jsonl"
    result = cli("score", ranked, "-o", out, "--scorer", "logprob", "--model", tiny_models.policy,
                 "--length-penalty", "0", "--as", "ref", "--keep-score")
    assert result.exit_code == 0, result.stderr
    for logprobs, row in zip(_answer_logprobs(tiny_models.policy, samples), read_jsonl(out), strict=True):
        assert row["pairs"] == [[1, 0]]
        expected = [logp.sum().item() for logp in logprobs]
        assert [r["scores"] for r in row["responses"]] == [{"ref": pytest.approx(e, abs=1e-4)} for e in expected]
        assert [r["score"] for r in row["responses"]] == [float(i) for i in range(len(expected))]


def test_keep_score_needs_a_name(samples, tmp_path, cli):
    result = cli("score", samples, "-o", tmp_path / "out.jsonl", "--scorer", "logprob", "--model", "m",
                 "--keep-score")
    assert result.exit_code == 2 and "--keep-score needs --as NAME" in result.stderr


def _hf_reward(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, 0].item()


@pytest.mark.parametrize("pack", ["on", "off"])
def test_reward_model_chat_format_equals_the_model_forward(tiny_models, samples, tmp_path, cli, pack):
    out = tmp_path / "scored.jsonl"
    result = cli("score", samples, "-o", out, "--scorer", "reward-model", "--model", tiny_models.reward,
                 "--pack-prompt", pack, "--batch-size", "2")
    assert result.exit_code == 0, result.stderr
    tokenizer = AutoTokenizer.from_pretrained(tiny_models.reward)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_models.reward).float().eval()
    for sample, row in zip(read_jsonl(samples), read_jsonl(out), strict=True):
        for response, scored in zip(sample["responses"], row["responses"], strict=True):
            ids = chat_ids(tokenizer, sample["prompt"], response["text"])
            assert scored["score"] == pytest.approx(_hf_reward(model, ids), abs=1e-5)


def test_reward_model_pair_and_concat_formats_run(tiny_models, samples, tmp_path, cli):
    scores = {}
    for fmt in ("pair", "concat"):
        out = tmp_path / f"{fmt}.jsonl"
        result = cli("score", samples, "-o", out, "--scorer", "reward-model", "--model", tiny_models.reward,
                     "--rm-format", fmt)
        assert result.exit_code == 0, result.stderr
        scores[fmt] = [r["score"] for row in read_jsonl(out) for r in row["responses"]]
    tokenizer = AutoTokenizer.from_pretrained(tiny_models.reward)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_models.reward).float().eval()
    ids = tokenizer("Say hello.").input_ids + tokenizer("hello there", add_special_tokens=False).input_ids
    assert scores["concat"][0] == pytest.approx(_hf_reward(model, ids), abs=1e-5)
    assert len(scores["pair"]) == 5 and scores["pair"] != scores["concat"]


def _with_pair_special_tokens(reward: Path, folder: Path) -> Path:
    """A copy of the tiny reward model whose tokenizer encodes a text pair as <s> A </s> B </s>, as BERT-style
    cross-encoders do with their own tokens."""
    import shutil

    from tokenizers.processors import TemplateProcessing

    shutil.copytree(reward, folder)
    tokenizer = AutoTokenizer.from_pretrained(reward)
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single="<s>:0 $A:0 </s>:0", pair="<s>:0 $A:0 </s>:0 $B:1 </s>:1",
        special_tokens=[("<s>", tokenizer.bos_token_id), ("</s>", tokenizer.eos_token_id)],
    )
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("specials", [False, True])
def test_reward_model_pair_format_equals_the_models_text_pair_forward(tiny_models, samples, tmp_path, cli, specials):
    reward = _with_pair_special_tokens(tiny_models.reward, tmp_path / "rm") if specials else tiny_models.reward
    out = tmp_path / "pair.jsonl"
    result = cli("score", samples, "-o", out, "--scorer", "reward-model", "--model", reward, "--rm-format", "pair")
    assert result.exit_code == 0, result.stderr
    tokenizer = AutoTokenizer.from_pretrained(reward)
    assert tokenizer.num_special_tokens_to_add(pair=True) == (3 if specials else 0)
    model = AutoModelForSequenceClassification.from_pretrained(reward).float().eval()
    prompts = {"a": "Say hello.", "b": "user: Name a fruit."}  # messages are read as `role: content` text
    for row in read_jsonl(out):
        for response in row["responses"]:
            with torch.no_grad():
                direct = model(**tokenizer(prompts[row["id"]], response["text"], return_tensors="pt")).logits[0, 0]
            assert response["score"] == pytest.approx(direct.item(), abs=1e-5)


def test_pair_template_encodes_ids_as_the_tokenizer_encodes_text_pairs(tiny_models, tmp_path):
    from stages.score.rm_inputs import PairTemplate

    tokenizer = AutoTokenizer.from_pretrained(_with_pair_special_tokens(tiny_models.reward, tmp_path / "rm"))
    tokenizer.model_input_names = ["input_ids", "token_type_ids", "attention_mask"]  # as BERT-style models take
    template = PairTemplate.of(tokenizer)
    prompts, responses = ["Say hello.", "", "x"], ["hello there", "a red apple", ""]
    def ids(text):
        return tokenizer(text, add_special_tokens=False).input_ids

    features = [template.encode(ids(p), ids(r)) for p, r in zip(prompts, responses, strict=True)]
    from_ids = tokenizer.pad(features, return_tensors="pt")
    from_text = tokenizer(prompts, responses, padding=True, return_tensors="pt")
    assert set(from_ids) == set(from_text) == {"input_ids", "token_type_ids", "attention_mask"}
    for key, value in from_text.items():
        assert torch.equal(from_ids[key], value), key


def test_long_response_keeps_its_end(tiny_models, write_jsonl, tmp_path, cli):
    long_text = " ".join(f"word{i}" for i in range(80))
    samples = write_jsonl("long.jsonl", [{"id": "x", "prompt": "Write a lot.", "responses": [
        {"text": long_text, "source": "m"}, {"text": "ok", "source": "m"}]}])
    out = tmp_path / "scored.jsonl"
    result = cli("score", samples, "-o", out, "--scorer", "reward-model", "--model", tiny_models.reward,
                 "--rm-format", "concat", "--max-length", "16")
    assert result.exit_code == 0, result.stderr
    tokenizer = AutoTokenizer.from_pretrained(tiny_models.reward)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_models.reward).float().eval()
    tail = tokenizer(long_text, add_special_tokens=False).input_ids[-16:]
    assert read_jsonl(out)[0]["responses"][0]["score"] == pytest.approx(_hf_reward(model, tail), abs=1e-5)

