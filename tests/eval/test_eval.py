"""`rrhf eval`: the report's arithmetic on literals, and a run on the tiny model against itself."""

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from stages.eval.report import mean_reward, perplexity
from stages.report.summary import win_rate

REWARDS = """
def vowels(prompt, response):
    letters = [c for c in response.lower() if c.isalpha()]
    return sum(c in "aeiou" for c in letters) / max(len(letters), 1)
"""


def test_win_rate_counts_ties_half_and_skips_missing_prompts():
    model = {"a": [1.0, 3.0], "b": [0.0], "c": [5.0], "d": [1.0]}
    baseline = {"a": [2.0], "b": [1.0], "c": [5.0]}
    # a: 2 > 2? tie -> 0.5; b: 0 < 1 -> 0; c: tie -> 0.5; d has no baseline.
    assert win_rate(model, baseline) == pytest.approx(1.0 / 3)
    assert mean_reward(model) == pytest.approx(10.0 / 5)


def test_perplexity_is_token_weighted():
    # Two references: log-prob sums -2 over 2 tokens and -6 over 2 tokens: exp(8 / 4).
    assert perplexity([-2.0, -6.0], [2, 2]) == pytest.approx(math.exp(2.0))
    assert perplexity([], []) is None


def test_eval_against_itself_is_a_draw_and_reports_reference_perplexity(tiny_models, tmp_path, write_jsonl, cli):
    prompts = write_jsonl("hh.jsonl", [
        {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello there", "rejected": "\n\nHuman: Hi\n\nAssistant: Go"},
        {"chosen": "\n\nHuman: Name a fruit\n\nAssistant: apple",
         "rejected": "\n\nHuman: Name a fruit\n\nAssistant: x"},
    ])
    rewards = tmp_path / "rewards.py"
    rewards.write_text(REWARDS)
    out = tmp_path / "eval"
    result = cli("eval", prompts, "-o", out, "--model", tiny_models.policy, "--baseline", tiny_models.policy,
                 "--scorer", "python", "--fn", f"{rewards}:vowels", "-k", "2", "--max-new-tokens", "6", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == json.loads((out / "report.json").read_text())
    assert report["win_rate"] == 0.5 and report["prompts"] == 2
    assert report["model"]["mean_reward"] == report["baseline"]["mean_reward"]
    assert report["model"]["responses"] == 4

    tokenizer = AutoTokenizer.from_pretrained(tiny_models.policy)
    model = AutoModelForCausalLM.from_pretrained(tiny_models.policy).float().eval()
    total, tokens = 0.0, 0
    for question, answer in (("Hi", "Hello there"), ("Name a fruit", "apple")):
        text = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                             add_generation_prompt=True)
        prompt = tokenizer(text, add_special_tokens=False).input_ids
        ids = tokenizer(answer, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([prompt + ids])).logits[0].float(), -1)
        total += logp[len(prompt) - 1 : len(prompt) - 1 + len(ids)].gather(-1, torch.tensor(ids)[:, None]).sum().item()
        tokens += len(ids)
    assert report["model"]["reference_perplexity"] == pytest.approx(math.exp(-total / tokens), rel=1e-5)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--scorer", "python"], "--scorer python needs --fn"),
        (["--scorer", "reward-model"], "--scorer reward-model needs --scorer-model"),
        (["--scorer", "judge", "--scorer-model", "m", "--judge-template", "missing.txt"], "--judge-template"),
        (["--scorer", "no-such"], "--scorer: 'no-such' is not a scorer"),
    ],
)
def test_a_misconfigured_eval_fails_in_one_line_before_any_model_loads(flags, expected, tmp_path, write_jsonl, cli):
    prompts = write_jsonl("p.jsonl", [{"prompt": "Hi"}])
    out = tmp_path / "eval"
    result = cli("eval", prompts, "-o", out, "--model", str(tmp_path / "no-model-here"), *flags)
    assert result.exit_code == 2
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists(), "nothing is sampled or written before the settings are checked"
