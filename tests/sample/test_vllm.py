"""The vLLM adapter, driven through a stand-in `vllm` module that follows vLLM 0.33's offline API
(LLM, SamplingParams, BeamSearchParams, LLM.generate/chat/beam_search/get_tokenizer): vLLM itself cannot
be installed where the tests run, so these check how the adapter builds requests and reads results."""

import json
import sys
import types
from dataclasses import dataclass, field

import pytest
from transformers import AutoTokenizer

from rrhf_cli.ids import derive_seed
from tests.conftest import read_jsonl


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]


@dataclass
class RequestOutput:
    prompt: str | None
    outputs: list[CompletionOutput]


@dataclass
class BeamSearchSequence:
    tokens: list[int]  # prompt tokens first, as in vLLM
    logprobs: list = field(default_factory=list)
    cum_logprob: float = 0.0
    text: str | None = None


@dataclass
class BeamSearchOutput:
    sequences: list[BeamSearchSequence]


class SamplingParams:
    # Keyword-only with vLLM's names, so a misspelt argument fails as it would with vLLM.
    def __init__(self, *, n=1, temperature=1.0, top_p=1.0, seed=None, stop=None, max_tokens=16):
        self.n, self.temperature, self.top_p, self.seed, self.stop, self.max_tokens = (
            n, temperature, top_p, seed, stop, max_tokens
        )  # fmt: skip


class BeamSearchParams:
    def __init__(self, *, beam_width, max_tokens, ignore_eos=False, temperature=0.0, length_penalty=1.0):
        self.beam_width, self.max_tokens, self.length_penalty = beam_width, max_tokens, length_penalty


def make_vllm(tokenizer_path, calls):
    """A module object standing in for `vllm`; every call is recorded in `calls`."""

    class LLM:
        def __init__(self, model, *, tensor_parallel_size=1, gpu_memory_utilization=0.92, seed=0,
                     enable_prefix_caching=None, max_model_len=None):  # fmt: skip
            calls.append(("init", dict(model=model, tensor_parallel_size=tensor_parallel_size,
                          gpu_memory_utilization=gpu_memory_utilization, seed=seed,
                          enable_prefix_caching=enable_prefix_caching, max_model_len=max_model_len)))  # fmt: skip
            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)

        def get_tokenizer(self):
            return self.tokenizer

        def _answer(self, label, params):
            # Says which prompt it answered, with which seed; the stop string "STOP" ends a text.
            return RequestOutput(label, [
                CompletionOutput(j, f"{label}|{params.seed}|{j}STOP tail", [1, 2]) for j in range(params.n)
            ])  # fmt: skip

        def generate(self, prompts, sampling_params=None, *, use_tqdm=True):
            calls.append(("generate", prompts, sampling_params))
            labels = [p if isinstance(p, str) else f"ids:{len(p['prompt_token_ids'])}" for p in prompts]
            return [self._answer(label, params) for label, params in zip(labels, sampling_params, strict=True)]

        def chat(self, messages, sampling_params=None, use_tqdm=True):
            calls.append(("chat", messages, sampling_params))
            return [self._answer(m[-1]["content"], p) for m, p in zip(messages, sampling_params, strict=True)]

        def beam_search(self, prompts, params, lora_request=None, use_tqdm=False, concurrency_limit=None):
            calls.append(("beam_search", prompts, params))
            outputs = []
            for prompt in prompts:
                ids = prompt["prompt_token_ids"]
                beams = [ids + [50 + b, 60 + b] for b in range(params.beam_width)]
                sequences = [BeamSearchSequence(tokens=t, text=self.tokenizer.decode(t)) for t in beams]
                outputs.append(BeamSearchOutput(sequences))
            return outputs

    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams, module.BeamSearchParams = LLM, SamplingParams, BeamSearchParams
    return module


@pytest.fixture
def vllm_calls(tiny_models, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "vllm", make_vllm(tiny_models.policy, calls))
    return calls


PROMPTS = [
    {"id": "s", "prompt": "Hello there"},
    {"id": "c", "prompt": [{"role": "user", "content": "Name a colour."}]},
    {"id": "long", "prompt": "The quick brown fox jumps over the lazy dog. " * 4},
]


def test_sampling_builds_one_request_per_prompt_with_n_k(vllm_calls, tmp_path, write_jsonl, cli):
    out = tmp_path / "s.jsonl"
    flags = ["--backend", "vllm", "--model", "org/policy", "-k", "3", "--temperature", "0.7", "--top-p", "0.9",
             "--max-new-tokens", "20", "--stop", "STOP", "--seed", "5", "--tensor-parallel-size", "2",
             "--gpu-memory-utilization", "0.5", "--max-model-len", "256"]  # fmt: skip
    result = cli("sample", write_jsonl("p.jsonl", PROMPTS), "-o", out, *flags)
    assert result.exit_code == 0, result.stderr
    kinds = [c[0] for c in vllm_calls]
    assert kinds == ["init", "chat", "generate"]
    assert vllm_calls[0][1] == dict(model="org/policy", tensor_parallel_size=2, gpu_memory_utilization=0.5, seed=5,
                                    enable_prefix_caching=True, max_model_len=256)  # fmt: skip
    _, messages, chat_params = vllm_calls[1]
    assert messages == [PROMPTS[1]["prompt"]]
    _, prompts, params = vllm_calls[2]
    assert sorted(prompts) == sorted([PROMPTS[0]["prompt"], PROMPTS[2]["prompt"]])  # strings go in verbatim
    for p in [*chat_params, *params]:
        assert (p.n, p.temperature, p.top_p, p.max_tokens, p.stop) == (3, 0.7, 0.9, 20, ["STOP"])
    rows = {r["id"]: r for r in read_jsonl(out)}
    for record in PROMPTS:
        label = record["prompt"] if isinstance(record["prompt"], str) else record["prompt"][-1]["content"]
        seed = derive_seed(5, record["id"])  # per prompt, so the draw does not depend on the batch
        assert [r["text"] for r in rows[record["id"]]["responses"]] == [f"{label}|{seed}|{j}" for j in range(3)]
        assert {r["source"] for r in rows[record["id"]]["responses"]} == {"org/policy"}


def test_cut_prompts_go_in_as_their_last_tokens(vllm_calls, tiny_models, tmp_path, write_jsonl, cli):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models.policy)
    out = tmp_path / "s.jsonl"
    flags = ["--backend", "vllm", "--model", "m", "-k", "2", "--max-prompt-tokens", "6"]
    result = cli("sample", write_jsonl("p.jsonl", PROMPTS), "-o", out, *flags)
    assert result.exit_code == 0, result.stderr
    sent = [p for c in vllm_calls if c[0] == "generate" for p in c[1]]
    long_ids = tokenizer(PROMPTS[2]["prompt"])["input_ids"]
    chat_ids = tokenizer.apply_chat_template(PROMPTS[1]["prompt"], add_generation_prompt=True, tokenize=True)
    chat_ids = list(chat_ids["input_ids"] if hasattr(chat_ids, "keys") else chat_ids)
    expected_cut = [{"prompt_token_ids": long_ids[-6:]}] + (
        [{"prompt_token_ids": chat_ids[-6:]}] if len(chat_ids) > 6 else []
    )
    assert all(cut in sent for cut in expected_cut)
    counts = json.loads((tmp_path / "s.jsonl.meta.json").read_text())["counts"]
    short = len(tokenizer("Hello there")["input_ids"])
    assert counts["prompts_truncated"] == sum(1 for n in (short, len(chat_ids), len(long_ids)) if n > 6)


def test_beam_search_decodes_only_the_generated_tokens(vllm_calls, tiny_models, tmp_path, write_jsonl, cli):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models.policy)
    out = tmp_path / "s.jsonl"
    flags = ["--backend", "vllm", "--model", "m", "-k", "2", "--strategy", "beam", "--length-penalty", "0.5"]
    result = cli("sample", write_jsonl("p.jsonl", PROMPTS[:2]), "-o", out, *flags)
    assert result.exit_code == 0, result.stderr
    [(_, prompts, params)] = [c for c in vllm_calls if c[0] == "beam_search"]
    assert (params.beam_width, params.length_penalty) == (2, 0.5)
    assert all(set(p) == {"prompt_token_ids"} for p in prompts)
    for row in read_jsonl(out):
        assert [r["text"] for r in row["responses"]] == [tokenizer.decode([50 + b, 60 + b]) for b in range(2)]


def test_missing_vllm_is_one_line_with_the_install_hint(monkeypatch, tmp_path, write_jsonl, cli):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail as if it were not installed
    out = tmp_path / "s.jsonl"
    result = cli("sample", write_jsonl("p.jsonl", PROMPTS), "-o", out, "--backend", "vllm", "--model", "m")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "rrhf: error: the vllm backend needs vLLM, which is not installed: pip install 'rrhf[vllm]' (Linux with a GPU)"
    )
    assert not out.exists()


def test_greedy_asks_once_and_copies_the_answer(vllm_calls, tmp_path, write_jsonl, cli):
    out = tmp_path / "s.jsonl"
    flags = ["--backend", "vllm", "--model", "m", "-k", "3", "--temperature", "0"]
    assert cli("sample", write_jsonl("p.jsonl", PROMPTS[:1]), "-o", out, *flags).exit_code == 0
    [(_, _, params)] = [c for c in vllm_calls if c[0] == "generate"]
    assert [p.n for p in params] == [1]
    texts = [r["text"] for r in read_jsonl(out)[0]["responses"]]
    assert len(texts) == 3 and len(set(texts)) == 1
