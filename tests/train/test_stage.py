"""`rrhf train` on the tiny model: it learns the ranking, saves a loadable folder, resumes, and trains LoRA."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from stages.contract.inputs import InputFile
from stages.lm.logprobs import response_logprobs
from stages.lm.packing import collate
from stages.runtime.launch import Launch
from stages.train.cache import prepared_data
from tests.conftest import read_jsonl

PROMPTS = ["Say hello.", "Name a fruit.", "Count to three.", "Pick a colour."]
RESPONSES = ["hello there", "apple", "one two three", "blue", "no", "maybe later"]


def _p(model_dir: Path, path: Path) -> torch.Tensor:
    """Length-normalised log-prob of every response, per query (alpha = 1)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    queries = list(prepared_data(InputFile(path), tokenizer, 256, Launch())[0])
    model = AutoModelForCausalLM.from_pretrained(model_dir).float().eval()
    with torch.no_grad():
        batch = collate(queries, tokenizer.pad_token_id, packed=False)
        return response_logprobs(model, batch, None) / batch["lengths"]


def _rank_accuracy(p: torch.Tensor, rewards: list[float], k: int) -> float:
    p, r = p.view(-1, k), torch.tensor(rewards).view(-1, k)
    worse = r[:, :, None] < r[:, None, :]
    return ((p[:, :, None] < p[:, None, :]) & worse).sum().item() / worse.sum().item()


@pytest.fixture
def inverted(tiny_models, tmp_path):
    """A scored file whose rewards order each query's responses opposite to the initial model's p."""
    rows = [{"id": f"q{i}", "prompt": prompt, "responses": [{"text": t, "source": "s"} for t in RESPONSES[:3]]}
            for i, prompt in enumerate(PROMPTS)]
    rows += [{"id": "chat", "prompt": [{"role": "user", "content": "Hi"}],
              "responses": [{"text": t, "source": "s"} for t in RESPONSES[3:]]}]
    path = tmp_path / "unscored.jsonl"
    path.write_text("".join(json.dumps(r | {"responses": [x | {"score": 0.0} for x in r["responses"]]}) + "\n"
                            for r in rows))
    p = _p(tiny_models.policy, path).view(-1, 3)
    for row, values in zip(rows, p.tolist(), strict=True):
        for response, value in zip(row["responses"], values, strict=True):
            response["score"] = -value
    scored = tmp_path / "scored.jsonl"
    scored.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rewards = [x["score"] for r in rows for x in r["responses"]]
    return scored, rewards


def test_training_raises_rank_accuracy_and_saves_a_loadable_model(tiny_models, inverted, tmp_path, cli):
    scored, rewards = inverted
    assert _rank_accuracy(_p(tiny_models.policy, scored), rewards, 3) == 0.0
    out = tmp_path / "out"
    result = cli("train", scored, "-o", out, "--model", tiny_models.policy, "--max-steps", "12", "--lr", "1e-2",
                 "--queries-per-batch", "2", "--sft-weight", "0.1", "--logging-steps", "4")
    assert result.exit_code == 0, result.stderr
    assert _rank_accuracy(_p(out, scored), rewards, 3) > 0.6

    before = AutoModelForCausalLM.from_pretrained(tiny_models.policy).state_dict()
    after = AutoModelForCausalLM.from_pretrained(out).state_dict()
    for name, tensor in before.items():
        assert not torch.equal(tensor, after[name]), f"{name} did not change"
    template = AutoTokenizer.from_pretrained(tiny_models.policy).chat_template
    assert AutoTokenizer.from_pretrained(out).chat_template == template

    metrics = read_jsonl(out / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 4, 8, 12]
    for key in ("loss", "rank_loss", "sft_loss", "rank_acc", "p_best", "p_worst", "learning_rate", "tokens_per_second"):
        assert key in metrics[0]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["stage"] == "train" and meta["counts"]["steps"] == 12 and meta["counts"]["queries"] == 5
    assert meta["config"]["lr"] == 0.01
    inspected = json.loads(cli("inspect", out, "--json").stdout)
    assert inspected["meta"]["stage"] == "train" and inspected["metrics"]["step"] == 12


def test_one_step_run_records_its_loss_and_pairs_files_train(tiny_models, tmp_path, write_jsonl, cli):
    pairs = write_jsonl("pairs.jsonl", [
        {"prompt": "Q", "chosen": "good answer", "rejected": "bad"},
        {"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello!"}],
         "rejected": [{"role": "assistant", "content": "Go away."}]},
    ])
    out = tmp_path / "out"
    result = cli("train", pairs, "-o", out, "--model", tiny_models.policy, "--max-steps", "1",
                 "--rank-loss", "logistic")
    assert result.exit_code == 0, result.stderr
    (first,) = read_jsonl(out / "metrics.jsonl")
    assert first["step"] == 1 and first["loss"] > 0


def test_resume_continues_from_the_last_checkpoint(tiny_models, inverted, tmp_path, cli):
    scored, _ = inverted
    out = tmp_path / "out"
    common = ["train", scored, "-o", out, "--model", tiny_models.policy, "--lr", "1e-3", "--logging-steps", "1"]
    assert cli(*common, "--max-steps", "4", "--save-steps", "2", "--save-total-limit", "1").exit_code == 0
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4"]

    refused = cli(*common, "--max-steps", "6")
    assert refused.exit_code == 2 and "--resume" in refused.stderr

    resumed = cli(*common, "--max-steps", "6", "--save-steps", "2", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    steps = [m["step"] for m in read_jsonl(out / "metrics.jsonl")]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert json.loads((out / "meta.json").read_text())["counts"]["steps"] == 6


def test_resume_without_a_checkpoint_is_a_usage_error(tiny_models, inverted, tmp_path, cli):
    scored, _ = inverted
    result = cli("train", scored, "-o", tmp_path / "fresh", "--model", tiny_models.policy, "--resume")
    assert result.exit_code == 2 and "no checkpoint" in result.stderr


def test_lora_trains_and_merges(tiny_models, inverted, tmp_path, cli):
    pytest.importorskip("peft")
    scored, _ = inverted
    out = tmp_path / "out"
    result = cli("train", scored, "-o", out, "--model", tiny_models.policy, "--max-steps", "3", "--lr", "1e-2",
                 "--lora-r", "4", "--merge-lora", "--pack-prompt", "on")
    assert result.exit_code == 0, result.stderr
    assert json.loads((out / "meta.json").read_text())["counts"]["packed"] == 1
    assert (out / "adapter" / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(out).state_dict()
    base = AutoModelForCausalLM.from_pretrained(tiny_models.policy).state_dict()
    changed = [n for n, t in base.items() if not torch.equal(t, merged[n])]
    assert changed and all(any(t in n for t in ("q_proj", "k_proj", "v_proj", "o_proj")) for n in changed)


def test_packed_with_gradient_checkpointing_trains_as_unpacked(tiny_models, inverted, tmp_path, cli):
    """The shared-prompt attention under the real Trainer, layers recomputed in the backward pass: the same
    figures and the same weights as one row per response."""
    scored, _ = inverted
    runs = {}
    for pack, extra in (("off", ["--no-gradient-checkpointing"]), ("on", [])):  # checkpointing is the default
        out = tmp_path / pack
        result = cli("train", scored, "-o", out, "--model", tiny_models.policy, "--max-steps", "2", "--lr", "1e-3",
                     "--logging-steps", "1", "--pack-prompt", pack, *extra)
        assert result.exit_code == 0, result.stderr
        assert json.loads((out / "meta.json").read_text())["counts"]["packed"] == int(pack == "on")
        runs[pack] = (read_jsonl(out / "metrics.jsonl"), AutoModelForCausalLM.from_pretrained(out).state_dict())
    (metrics_off, weights_off), (metrics_on, weights_on) = runs["off"], runs["on"]
    for step_off, step_on in zip(metrics_off, metrics_on, strict=True):
        for name in ("loss", "rank_loss", "sft_loss", "p_best", "p_worst"):
            assert step_on[name] == pytest.approx(step_off[name], rel=1e-4, abs=1e-5), name
    for name, tensor in weights_off.items():
        torch.testing.assert_close(weights_on[name], tensor, atol=1e-5, rtol=1e-4, msg=name)


def test_torchrun_two_processes_match_one(tiny_models, inverted, tmp_path):
    """DDP on CPU (gloo): two ranks with one query each log the same first-step figures as one process with two."""
    scored, _ = inverted
    two = tmp_path / "two.jsonl"
    two.write_text("".join(line + "\n" for line in scored.read_text().splitlines()[:2]))
    common = [str(two), "--model", str(tiny_models.policy), "--max-steps", "1", "--lr", "1e-3", "--pack-prompt", "on"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "rrhf_cli", "train", *common, "-q", "-o", str(tmp_path / "one"),
                             "--queries-per-batch", "2"], env=env, capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29517", "-m", "rrhf_cli", "train", *common, "-o", str(tmp_path / "ddp"),
                          "--no-ddp-find-unused-parameters"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    # Rank 0 alone reports; the other rank would repeat every line.
    assert sum("rrhf: train: prompts packed" in line for line in ddp.stderr.splitlines()) == 1, ddp.stderr
    assert sum(line.startswith("rrhf: train: 1 steps in") for line in ddp.stderr.splitlines()) == 1, ddp.stderr
    assert "[rank 1]" not in ddp.stderr
    assert "find_unused_parameters=True" not in ddp.stderr  # DDP's per-step warning, off with the flag
    # Each rank ends past the interpreter's teardown (where gloo could abort a run that had finished), after the
    # exit handlers: the output's lock file is gone.
    assert not (tmp_path / "ddp.lock").exists() and "terminate called" not in ddp.stderr
    (one,) = read_jsonl(tmp_path / "one" / "metrics.jsonl")
    (dist,) = read_jsonl(tmp_path / "ddp" / "metrics.jsonl")
    for name in ("loss", "rank_loss", "sft_loss", "rank_acc", "p_best", "p_worst"):  # all ranks, not rank 0's
        assert dist[name] == pytest.approx(one[name], rel=1e-5), name


def test_unscored_samples_are_bad_input_and_nothing_is_written(tiny_models, tmp_path, write_jsonl, cli):
    samples = write_jsonl("samples.jsonl", [
        {"id": "a", "prompt": "Q", "responses": [{"text": "x", "score": 1.0}, {"text": "y", "score": 0.0}]},
        {"id": "b", "prompt": "Q2", "responses": [{"text": "x", "score": 1.0}, {"text": "y"}]},
    ])
    out = tmp_path / "out"
    result = cli("train", samples, "-o", out, "--model", tiny_models.policy)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"rrhf: error: {samples}:2: 'responses[1]' has no score; run `rrhf score` on this file first"
    )
    assert not out.exists()
