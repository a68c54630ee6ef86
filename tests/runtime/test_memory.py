"""Out of memory, host or CUDA, ends a run in one line naming the stage, what is kept and what to lower; exit 1."""

import torch

from stages.sample.hf import HfSampler
from stages.train.trainer import RRHFTrainer


def _allocation_failure() -> None:
    torch.empty(1 << 50, dtype=torch.uint8)  # a real allocator failure: 1 PiB


def test_sample_out_of_memory_keeps_its_journal(tiny_models, tmp_path, cli, write_jsonl, monkeypatch):
    prompts = write_jsonl("prompts.jsonl", [{"id": f"p{i}", "prompt": f"say {i}"} for i in range(4)])
    out = tmp_path / "samples.jsonl"
    sample = HfSampler.sample
    calls = []

    def second_batch_fails(self, requests, batch_seed):
        calls.append(len(requests))
        if len(calls) == 2:
            _allocation_failure()
        return sample(self, requests, batch_seed)

    monkeypatch.setattr(HfSampler, "sample", second_batch_fails)
    args = ["sample", str(prompts), "-o", str(out), "--model", str(tiny_models.policy), "-k", "2",
            "--max-new-tokens", "2", "--batch-size", "2"]
    result = cli(*args)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"rrhf: error: sample: out of memory (host); 2 of 4 records are finished and kept in {out}.partial: run the "
        "same command again to continue; lower --batch-size, -k or --max-new-tokens (vllm: "
        "--gpu-memory-utilization, --max-model-len)"
    )
    assert not out.exists()
    monkeypatch.setattr(HfSampler, "sample", sample)
    assert cli(*args).exit_code == 0 and len(out.read_text().splitlines()) == 4


def test_train_out_of_memory_names_its_last_checkpoint(tiny_models, tmp_path, cli, write_jsonl, monkeypatch):
    responses = [{"text": t, "score": float(j)} for j, t in enumerate(["a", "bb", "ccc"])]
    scored = write_jsonl("scored.jsonl", [{"id": f"q{i}", "prompt": f"p{i}", "responses": responses}
                                          for i in range(4)])
    out = tmp_path / "out"
    loss = RRHFTrainer.compute_loss
    steps = []

    def third_step_fails(self, *args, **kwargs):
        steps.append(1)
        if len(steps) == 3:
            _allocation_failure()
        return loss(self, *args, **kwargs)

    monkeypatch.setattr(RRHFTrainer, "compute_loss", third_step_fails)
    result = cli("train", str(scored), "-o", str(out), "--model", str(tiny_models.policy), "--max-steps", "4",
                 "--save-steps", "1", "--queries-per-batch", "1")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"rrhf: error: train: out of memory (host); the last complete checkpoint is {out / 'checkpoint-2'}: add "
        "--resume to continue from it; lower --queries-per-batch (with --grad-accum to keep the batch), "
        "--max-length or --loss-chunk-size, or train a LoRA adapter (--lora-r)"
    )
