"""`rrhf score --engine vllm`, driven through a stand-in `vllm` module that follows vLLM's documented offline
pooling API (LLM(model, runner="pooling", ...), LLM.classify, LLM.score, PoolingParams(use_activation)):
vLLM itself cannot be installed where the tests run. The stand-in computes its outputs with the real tiny
reward model and, as vLLM does, passes a one-label classifier's logit through a sigmoid unless
`use_activation=False`; so these tests check that both engines score the same tokens to the same values."""

import sys
import types

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, LlamaForSequenceClassification

from stages.lm.loading import fitting_length
from tests.conftest import read_jsonl
from tests.score.test_stage import SAMPLES


class PoolingParams:
    def __init__(self, *, use_activation=None, dimensions=None):  # keyword-only, as vLLM's names
        self.use_activation = use_activation


class ClassificationOutput:
    def __init__(self, probs):
        self.probs = probs


class ScoringOutput:
    def __init__(self, score):
        self.score = score


class RequestOutput:
    def __init__(self, outputs):
        self.outputs = outputs


def make_vllm(calls):
    """A module standing in for `vllm`; every call is recorded in `calls`."""

    class LLM:
        def __init__(self, model, *, runner="auto", tensor_parallel_size=1, gpu_memory_utilization=0.9,
                     max_model_len=None, dtype="auto", seed=0, enable_prefix_caching=None):  # fmt: skip
            engine = dict(runner=runner, tensor_parallel_size=tensor_parallel_size, dtype=dtype, seed=seed,
                          gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                          enable_prefix_caching=enable_prefix_caching)  # fmt: skip
            calls.append(("init", model, engine))
            self.model = AutoModelForSequenceClassification.from_pretrained(model).float().eval()
            heads = self.model.config.num_attention_heads
            if heads % tensor_parallel_size:  # one of the checks vLLM makes, with its wording
                raise ValueError(f"Total number of attention heads ({heads}) must be divisible by tensor parallel "
                                 f"size ({tensor_parallel_size}).\nMore detail")
            self.tokenizer = AutoTokenizer.from_pretrained(model)

        def _value(self, ids, params):
            with torch.no_grad():
                logit = self.model(torch.tensor([ids])).logits[0]
            return (logit if params is not None and params.use_activation is False else torch.sigmoid(logit)).tolist()

        def classify(self, prompts, *, pooling_params=None, use_tqdm=True, lora_request=None,
                     tokenization_kwargs=None):  # fmt: skip
            calls.append(("classify", prompts, pooling_params))
            return [RequestOutput(ClassificationOutput(self._value(p["prompt_token_ids"], pooling_params)))
                    for p in prompts]  # fmt: skip

        def score(self, data_1, data_2, /, *, use_tqdm=True, pooling_params=None, lora_request=None,
                  tokenization_kwargs=None):  # fmt: skip
            calls.append(("score", (data_1, data_2), pooling_params))
            return [RequestOutput(ScoringOutput(self._value(self.tokenizer(a, b)["input_ids"], pooling_params)[0]))
                    for a, b in zip(data_1, data_2, strict=True)]  # fmt: skip

    module = types.ModuleType("vllm")
    module.LLM, module.PoolingParams = LLM, PoolingParams
    return module


@pytest.fixture
def vllm_calls(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "vllm", make_vllm(calls))
    return calls


@pytest.fixture
def samples(write_jsonl):
    return write_jsonl("samples.jsonl", SAMPLES)


def scores_of(path):
    return [r["score"] for row in read_jsonl(path) for r in row["responses"]]


def score_both(cli, tmp_path, samples, model, *flags):
    """Scores from the transformers engine and the vllm engine, same flags otherwise."""
    out = {}
    for engine in ("transformers", "vllm"):
        path = tmp_path / f"{engine}.jsonl"
        result = cli("score", samples, "-o", path, "--backend", "reward-model", "--model", model, "--engine", engine,
                     "--no-bf16", *flags)  # fmt: skip
        assert result.exit_code == 0, result.stderr
        out[engine] = scores_of(path)
    return out


def test_chat_format_equals_the_transformers_engine(vllm_calls, tiny_models, samples, tmp_path, cli):
    flags = ["--tensor-parallel-size", "2", "--gpu-memory-utilization", "0.5", "--max-length", "512", "--seed", "3"]
    scores = score_both(cli, tmp_path, samples, tiny_models.reward, *flags)
    # Equal to the transformers logits, so vLLM's default sigmoid was turned off.
    assert scores["vllm"] == pytest.approx(scores["transformers"], abs=1e-5)
    (_, model, engine), *requests = vllm_calls
    assert model == str(tiny_models.reward)
    assert engine == dict(runner="pooling", tensor_parallel_size=2, gpu_memory_utilization=0.5, max_model_len=512,
                          dtype="float32", seed=3, enable_prefix_caching=None)  # fmt: skip
    assert [kind for kind, *_ in requests] == ["classify"]  # one engine call for the whole batch
    _, prompts, params = requests[0]
    assert params.use_activation is False
    assert len(prompts) == 5 and all(set(p) == {"prompt_token_ids"} for p in prompts)


def test_a_long_response_keeps_its_end_on_vllm(vllm_calls, tiny_models, write_jsonl, tmp_path, cli):
    long_text = " ".join(f"word{i}" for i in range(80))
    samples = write_jsonl("long.jsonl", [{"id": "x", "prompt": "Write a lot.", "responses": [
        {"text": long_text, "source": "m"}, {"text": "ok", "source": "m"}]}])  # fmt: skip
    scores = score_both(cli, tmp_path, samples, tiny_models.reward, "--rm-format", "concat", "--max-length", "16")
    assert scores["vllm"] == pytest.approx(scores["transformers"], abs=1e-5)
    tail = AutoTokenizer.from_pretrained(tiny_models.reward)(long_text, add_special_tokens=False).input_ids[-16:]
    assert [c for c in vllm_calls if c[0] == "classify"][0][1][0] == {"prompt_token_ids": tail}


def test_pair_format_goes_through_vllm_cross_encoder_scoring(vllm_calls, tiny_models, samples, tmp_path, cli):
    scores = score_both(cli, tmp_path, samples, tiny_models.reward, "--rm-format", "pair")
    assert scores["vllm"] == pytest.approx(scores["transformers"], abs=1e-5)
    [(_, (firsts, seconds), params)] = [c for c in vllm_calls if c[0] == "score"]
    assert params.use_activation is False
    assert firsts[:3] == ["Say hello."] * 3 and seconds[:3] == ["hello there", "hi", "go away"]


@pytest.mark.parametrize(("pack", "caching"), [("auto", None), ("on", True), ("off", False)])
def test_pack_prompt_sets_prefix_caching(vllm_calls, tiny_models, samples, tmp_path, cli, pack, caching):
    out = tmp_path / "s.jsonl"
    result = cli("score", samples, "-o", out, "--backend", "reward-model", "--model", tiny_models.reward,
                 "--engine", "vllm", "--pack-prompt", pack)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert vllm_calls[0][2]["enable_prefix_caching"] is caching
    assert vllm_calls[0][2]["dtype"] == "bfloat16"  # the default on a GPU, as with transformers
    assert vllm_calls[0][2]["max_model_len"] == 1024  # --max-length 2048, capped at the model's context


def test_settings_vllm_rejects_are_one_line(vllm_calls, tiny_models, samples, tmp_path, cli):
    out = tmp_path / "s.jsonl"
    result = cli("score", samples, "-o", out, "--backend", "reward-model", "--model", tiny_models.reward,
                 "--engine", "vllm", "--tensor-parallel-size", "3")  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"rrhf: error: vLLM could not start {tiny_models.reward}: Total number of attention heads (4) must be "
        "divisible by tensor parallel size (3)."
    ]
    assert not out.exists()


def test_missing_vllm_is_one_line_with_the_install_hint(monkeypatch, tiny_models, samples, tmp_path, cli):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail as if it were not installed
    out = tmp_path / "s.jsonl"
    result = cli("score", samples, "-o", out, "--backend", "reward-model", "--model", tiny_models.reward,
                 "--engine", "vllm")  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "rrhf: error: --engine vllm needs vLLM, which is not installed: pip install 'rrhf[vllm]' (Linux with a GPU)"
    )
    assert not out.exists()


@pytest.mark.parametrize("engine", ["transformers", "vllm"])
def test_a_model_with_two_outputs_is_refused(vllm_calls, tiny_models, samples, tmp_path, cli, engine):
    two = tmp_path / "two-labels"
    LlamaForSequenceClassification(AutoConfig.from_pretrained(tiny_models.reward, num_labels=2)).save_pretrained(two)
    AutoTokenizer.from_pretrained(tiny_models.reward).save_pretrained(two)
    out = tmp_path / "s.jsonl"
    result = cli("score", samples, "-o", out, "--backend", "reward-model", "--model", two, "--engine", engine)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"rrhf: error: --model {two}: a reward model has one output, this one has 2"
    ]
    assert not [c for c in vllm_calls if c[0] == "init"]  # refused before vLLM takes the GPU


def test_fitting_length_is_capped_by_the_model_context():
    assert fitting_length(2048, types.SimpleNamespace(max_position_embeddings=512)) == 512
    assert fitting_length(256, types.SimpleNamespace(max_position_embeddings=512)) == 256
    assert fitting_length(2048, types.SimpleNamespace(n_positions=1024)) == 1024  # GPT-2's name
    assert fitting_length(2048, types.SimpleNamespace()) == 2048


def test_vllm_engine_takes_bigger_journal_batches_by_default():
    from stages.score.config import ScoreConfig

    assert ScoreConfig(backend="reward-model", model="m", engine="vllm").batch_size == 256
    assert ScoreConfig(backend="reward-model", model="m").batch_size == 16
    assert ScoreConfig(backend="reward-model", model="m", engine="vllm", batch_size=8).batch_size == 8


def test_a_model_vllm_cannot_classify_is_one_line(vllm_calls, tiny_models, samples, tmp_path, cli, monkeypatch):
    def refuse(self, prompts, **kwargs):
        raise ValueError("Classification API is not supported by this model. Try converting the model using "
                         "`--convert classify`.\nMore detail")  # fmt: skip

    monkeypatch.setattr(sys.modules["vllm"].LLM, "classify", refuse)
    out = tmp_path / "s.jsonl"
    result = cli("score", samples, "-o", out, "--backend", "reward-model", "--model", tiny_models.reward,
                 "--engine", "vllm")  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"rrhf: error: vLLM could not score with {tiny_models.reward}: Classification API is not supported by "
        "this model. Try converting the model using `--convert classify`."
    )
    assert not out.exists()


def test_engine_vllm_is_for_the_reward_model_backend(tiny_models, samples, tmp_path, cli):
    out = tmp_path / "s.jsonl"
    result = cli("score", samples, "-o", out, "--backend", "logprob", "--model", tiny_models.policy,
                 "--engine", "vllm")  # fmt: skip
    assert result.exit_code == 2
    assert "--engine vllm is for --backend reward-model; --backend logprob runs on its own" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
