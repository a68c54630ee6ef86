"""`torchrun --nproc_per_node 2 -m rrhf_cli sample`: the ranks split the prompts and rank 0 writes the file one
process writes, with `world_size` in its meta (CPU, gloo); with vLLM, each rank runs an engine of its own."""

import json

from tests.conftest import read_jsonl, real_vllm, rrhf_process

PROMPTS = [{"id": f"p{i}", "prompt": text} for i, text in enumerate(
    ["Hello there", "Name a fruit.", "Count to three.", "Pick a colour.", "Say yes.", "The quick brown fox"])]


def launched_as_one(tmp_path, two):
    """A 2-process launch wrote two.jsonl as one process wrote one.jsonl: the same records and counts,
    world_size 2, no journal of either rank left, and the totals said once, by rank 0."""
    assert two.returncode == 0, two.stderr[-3000:]
    assert read_jsonl(tmp_path / "two.jsonl") == read_jsonl(tmp_path / "one.jsonl")
    single = json.loads((tmp_path / "one.jsonl.meta.json").read_text())
    meta = json.loads((tmp_path / "two.jsonl.meta.json").read_text())
    assert (meta["world_size"], single["world_size"]) == (2, 1)
    assert meta["counts"] == single["counts"]
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("two"))
    assert left == ["two.jsonl", "two.jsonl.meta.json"]
    assert sum("rrhf: sample: 6 prompts, 12 responses" in line for line in two.stderr.splitlines()) == 1, two.stderr


def test_two_ranks_write_the_file_one_process_writes(tiny_models, write_jsonl, tmp_path):
    prompts = write_jsonl("p.jsonl", PROMPTS)
    # Greedy decoding: equal whatever the batches; sampled hf batches are seeded from their prompts' ids.
    flags = ["--model", tiny_models.policy, "-k", "2", "--temperature", "0", "--max-new-tokens", "6",
             "--batch-size", "2"]  # fmt: skip
    one = rrhf_process("sample", prompts, "-o", tmp_path / "one.jsonl", *flags)
    assert one.returncode == 0, one.stderr
    launched_as_one(tmp_path, rrhf_process("sample", prompts, "-o", tmp_path / "two.jsonl", *flags, nproc=2))


def test_append_is_refused_under_a_launch(tiny_models, write_jsonl, tmp_path):
    out = tmp_path / "s.jsonl"
    result = rrhf_process("sample", write_jsonl("p.jsonl", PROMPTS), "-o", out, "--model", tiny_models.policy,
                          "--append", nproc=2)  # fmt: skip
    assert result.returncode != 0
    assert "--append runs in one process" in result.stderr and not out.exists()


@real_vllm
def test_two_ranks_each_with_its_own_vllm_engine_write_the_file_one_process_writes(
    vllm_models, write_jsonl, tmp_path, cli
):
    prompts = write_jsonl("p.jsonl", PROMPTS)
    flags = ["--model", vllm_models.policy, "--engine", "vllm", "-k", "2", "--temperature", "0", "--max-new-tokens",
             "6", "--max-model-len", "96", "--seed", "0"]  # fmt: skip
    one = cli("sample", prompts, "-o", tmp_path / "one.jsonl", *flags)
    assert one.exit_code == 0, one.stderr
    # Each rank starts an engine of its own beside torchrun's process group (vLLM's CPU build, one core each).
    launched_as_one(tmp_path, rrhf_process("sample", prompts, "-o", tmp_path / "two.jsonl", *flags, nproc=2,
                                           timeout=600))
