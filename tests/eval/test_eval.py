"""`rrhf eval`: the report's arithmetic on literals, and a run on the tiny model against itself."""

import json
import math

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from stages.eval.report import mean_reward, perplexity
from stages.report.paired import prompt_means, win_rate
from tests.conftest import direct_logprobs, prompt_ids

REWARDS = """
def vowels(prompt, response):
    letters = [c for c in response.lower() if c.isalpha()]
    return sum(c in "aeiou" for c in letters) / max(len(letters), 1)
"""


def test_win_rate_counts_ties_half_and_skips_missing_prompts():
    model = {"a": [1.0, 3.0], "b": [0.0], "c": [5.0], "d": [1.0]}
    baseline = {"a": [2.0], "b": [1.0], "c": [5.0]}
    # a: 2 > 2? tie -> 0.5; b: 0 < 1 -> 0; c: tie -> 0.5; d has no baseline.
    assert win_rate(prompt_means(model), prompt_means(baseline)) == pytest.approx(1.0 / 3)
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
    # The same model drawing with the same seed: every prompt's difference is 0, and so is its spread.
    assert report["reward_over_baseline"] == {"mean": 0.0, "se": 0.0, "prompts": 2}
    assert report["model"]["mean_reward"] == report["baseline"]["mean_reward"]
    assert report["model"]["responses"] == 4

    tokenizer = AutoTokenizer.from_pretrained(tiny_models.policy)
    model = AutoModelForCausalLM.from_pretrained(tiny_models.policy).float().eval()
    total, tokens = 0.0, 0
    for question, answer in (("Hi", "Hello there"), ("Name a fruit", "apple")):
        prompt = prompt_ids(tokenizer, [{"role": "user", "content": question}])
        ids = tokenizer(answer, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        total += direct_logprobs(model, prompt, ids).sum().item()
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


def test_an_eval_config_file_has_sample_and_score_sections(tmp_path):
    from stages.eval.config import EvalConfig
    from stages.runtime.resolve import load_config_file, resolve_config

    path = tmp_path / "eval.yaml"
    path.write_text("model: m\nbatch_size: 4\nsample:\n  engine: vllm\n  k: 3\n"
                    "score:\n  scorer: reward-model\n  model: rm\n  rm_format: concat\n")
    config = resolve_config(EvalConfig, load_config_file(path), {"score": {"max_length": 64}}, warn=pytest.fail)
    sample = config.sample_config("m", "model")
    assert (sample.engine, sample.k, sample.batch_size, sample.source) == ("vllm", 3, 4, "model")
    score = config.score_config()
    assert (score.scorer, score.model, score.rm_format, score.max_length, score.batch_size) == (
        "reward-model", "rm", "concat", 64, 4
    )


def test_an_old_flat_eval_config_still_works_and_says_where_each_key_went(tmp_path):
    from stages.eval.config import EvalConfig
    from stages.runtime.resolve import resolve_config

    said: list[str] = []
    flat = {"model": "m", "sample_backend": "vllm", "temperature": 0.5, "scorer": "python", "fn": "r.py:f",
            "scorer_model": "rm"}
    config = resolve_config(EvalConfig, flat, {}, warn=said.append)
    assert (config.sample.engine, config.sample.temperature) == ("vllm", 0.5)
    assert (config.score.scorer, config.score.fn, config.score.model) == ("python", "r.py:f", "rm")
    assert "config key 'sample_backend' is deprecated; use 'sample: engine:' (kept until 0.2)" in said
    assert "config key 'scorer_model' is deprecated; use 'score: model:' (kept until 0.2)" in said
    assert len(said) == 5


def test_eval_s_former_sample_backend_flag_is_the_engine_and_says_so(tmp_path, write_jsonl, cli):
    prompts = write_jsonl("p.jsonl", [{"prompt": "Hi"}])
    result = cli("eval", prompts, "-o", tmp_path / "eval", "--model", "m", "--scorer", "python",
                 "--sample-backend", "vllm", "--temperature", "3")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "rrhf: --sample-backend is deprecated; use --engine (kept until 0.2)"
    assert "--temperature: vLLM samples at temperatures from 0 to 2" in lines[1]  # the engine is vllm
    assert "--scorer python needs --fn" in lines[1]
    assert len(lines) == 2


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--scorer-engine", "vllm", "--scorer", "python", "--fn", "r.py:f"],
         "--scorer-engine vllm is for --scorer reward-model or logprob; --scorer python runs on its own"),
        (["--scorer", "python", "--fn", "r.py:f", "--strategy", "beam", "--engine", "hf", "-k", "2",
          "--scorer-judge-orders", "2"], "--scorer-judge-orders above 1 needs --judge-mode listwise"),
        (["--scorer", "python", "--fn", "r.py:f", "--engine", "vllm", "--temperature", "3"],
         "--temperature: vLLM samples at temperatures from 0 to 2"),
    ],
)
def test_the_stages_messages_name_the_flags_as_eval_spells_them(flags, expected, tmp_path, write_jsonl, cli):
    prompts = write_jsonl("p.jsonl", [{"prompt": "Hi"}])
    result = cli("eval", prompts, "-o", tmp_path / "eval", "--model", "m", *flags)
    assert result.exit_code == 2 and expected in result.stderr, result.stderr
