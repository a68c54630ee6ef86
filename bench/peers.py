"""The peers rrhf is measured against, trained the way a user of each would: TRL's DPOTrainer (sigmoid loss, a
reference model) and CPOTrainer with `loss_type="simpo"` and `cpo_alpha=1` (reference-free, length-normalised,
plus NLL on the chosen answer: RRHF's nearest relative). Shared by bench_peers.py and bench_efficacy.py.

Each trainer keeps TRL's defaults except what every trainer in a comparison shares: batch, steps, learning
rate and schedule, max length, precision (TRL would pick bf16 by itself) and seed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PEERS = ("dpo", "simpo")
PEER_NAMES = {"rrhf": "rrhf train", "rrhf-no-checkpointing": "rrhf train, no checkpointing",
              "rrhf-dpo": "rrhf train --loss dpo", "rrhf-accum": "rrhf train, a prompt a forward",
              "rrhf-in-backward": "rrhf train --optimizer-in-backward",
              "dpo": "TRL DPOTrainer", "dpo-accum": "TRL DPOTrainer, a row a forward",
              "simpo": "TRL CPOTrainer (simpo)"}
RRHF_FLAGS = {"rrhf": [], "rrhf-no-checkpointing": ["--no-gradient-checkpointing"],
              # Each weight steps in the backward pass, so no step holds every gradient; it cannot clip (TRL does).
              "rrhf-in-backward": ["--optimizer-in-backward", "--max-grad-norm", "0"]}


@dataclass(frozen=True)
class Budget:
    """What every trainer in one comparison shares."""

    batch: int = 4  # examples a forward
    steps: int = 8
    grad_accum: int = 1  # forwards an optimiser step
    lr: float = 1e-6
    scheduler: str = "constant"
    max_length: int = 512
    seed: int = 0
    gradient_checkpointing: bool | None = None  # None: each trainer's default (on in TRL and in rrhf)
    beta: float | None = None  # None: each trainer's default (its paper's)


@dataclass(frozen=True)
class Finished:
    """One training run, measured from outside its process: the training loop's seconds (loading excluded),
    the process's peak resident set, and CUDA's peak allocated memory where there is a GPU. For rrhf, also the
    resident set at its phases (`Phases`)."""

    seconds: float
    peak_rss_mb: float
    cuda_peak_mb: float | None
    steps: int
    phases: Phases | None = None
    packed: bool | None = None  # rrhf: whether it trained with the prompt packed once per query
    reference_seconds: float = 0.0  # rrhf --reference-model: its pass over the data before the training loop


@dataclass(frozen=True)
class Phases:
    """The resident set of an `rrhf train` process at the ends of its phases, from its log lines: the data
    prepared (interpreter, libraries, tokenised data), the model loaded (and the packing estimate run: `load_peak`
    is the highest point on the way), then the training loop's peak."""

    data_mb: float
    loaded_mb: float
    load_peak_mb: float
    train_peak_mb: float


def train(name: str, data: Path, model: Path, out: Path, budget: Budget) -> Finished:
    """One run of the trainer `name` (a key of PEER_NAMES) on `data`, from `model` into `out`."""
    if name.endswith("-accum"):  # the same examples an optimiser step, one a forward: less held at once
        name = name.removesuffix("-accum")
        budget = replace(budget, batch=1, grad_accum=budget.batch * budget.grad_accum)
    if name in PEERS:
        return train_peer(name, data, model, out, budget)
    if name == "rrhf-dpo":  # the reference computed in-process before the policy loads: one model held at a time
        return train_rrhf(data, model, out, budget, "--loss", "dpo", "--reference-model", str(model))
    return train_rrhf(data, model, out, budget, *RRHF_FLAGS[name])


def train_rrhf(data: Path, model: Path, out: Path, budget: Budget, *flags: str) -> Finished:
    """`rrhf train` as a user runs it, on `data` (any format it reads)."""
    command = [sys.executable, "-m", "rrhf_cli", "train", str(data), "-o", str(out), "--model", str(model),
               "--queries-per-batch", str(budget.batch), "--grad-accum", str(budget.grad_accum),
               "--max-steps", str(budget.steps), "--lr", str(budget.lr),
               "--scheduler", budget.scheduler, "--max-length", str(budget.max_length), "--seed", str(budget.seed),
               "--force", *flags]
    if budget.gradient_checkpointing is not None:
        command.append(f"--{'' if budget.gradient_checkpointing else 'no-'}gradient-checkpointing")
    if budget.beta is not None:
        command += ["--beta", str(budget.beta)]
    stderr, peak, lines, samples = _run(command)
    match = re.search(r"train: (\d+) steps in ([\d.]+) s", stderr)
    if match is None:
        raise RuntimeError(f"rrhf train printed no summary line:\n{stderr[-3000:]}")
    cuda = re.search(r"peak CUDA memory ([\d.]+) MiB", stderr)
    reference = re.search(r"train: reference log-probs of \d+ queries from .* in ([\d.]+) s", stderr)
    return Finished(float(match[2]), peak, float(cuda[1]) if cuda else None, int(match[1]), _phases(lines, samples),
                    packed=" packed prompts" in stderr, reference_seconds=float(reference[1]) if reference else 0.0)


def _phases(lines: list[tuple[float, str]], samples: list[tuple[float, float]]) -> Phases:
    """The phases of an rrhf run from its timed log lines and its timed resident-set samples."""
    marks = {"data": r"train: (reusing prepared data|prepared \d+)", "loaded": r"train: \d+ queries",
             "trained": r"train: \d+ steps in"}
    at = {name: next(t for t, line in lines if re.search(pattern, line)) for name, pattern in marks.items()}

    def between(start: float, end: float) -> list[float]:
        return [mb for t, mb in samples if start <= t < end]

    loading = between(at["data"], at["loaded"])
    return Phases(data_mb=max(between(0.0, at["data"])), loaded_mb=loading[-1], load_peak_mb=max(loading),
                  train_peak_mb=max(between(at["loaded"], at["trained"])))


def train_peer(peer: str, data: Path, model: Path, out: Path, budget: Budget) -> Finished:
    """A TRL trainer (`peer` in PEERS) on TRL preference rows in `data`, in a process of its own."""
    command = [sys.executable, "-m", "bench.peers", peer, str(data), str(model), str(out), json.dumps(asdict(budget))]
    stderr, peak, _, _ = _run(command)
    result = json.loads(stderr.strip().splitlines()[-1])
    return Finished(result["seconds"], peak, result["cuda_peak_mb"], result["steps"])


def _run(command: list[str]) -> tuple[str, float, list[tuple[float, str]], list[tuple[float, float]]]:
    """Run a command to its end: its stderr, its peak resident set in MiB (the kernel's own count), and, timed
    from its start, its stderr lines and its resident set sampled every 10 ms."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        status = Path(f"/proc/{process.pid}/status")
        while not done.wait(0.01):
            try:
                rss = next(int(line.split()[1]) / 1024 for line in status.read_text().splitlines()
                           if line.startswith("VmRSS:"))
            except (OSError, StopIteration):  # the process is ending
                return
            samples.append((time.perf_counter() - start, rss))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert process.stderr is not None
    lines = [(time.perf_counter() - start, line) for line in process.stderr]
    _, status, usage = os.wait4(process.pid, 0)
    done.set()
    sampler.join()
    stderr = "".join(line for _, line in lines)
    if code := os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{' '.join(command[:4])} failed ({code}):\n{stderr[-3000:]}")
    return stderr, usage.ru_maxrss / 1024, lines, samples


def _train_trl(peer: str, data: Path, model_dir: Path, out: Path, budget: Budget) -> dict[str, Any]:
    """In this process: load, then time `trainer.train()` alone."""
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(budget.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    dataset = load_dataset("json", data_files=str(data), split="train")
    common: dict[str, Any] = dict(
        output_dir=str(out), per_device_train_batch_size=budget.batch,
        gradient_accumulation_steps=budget.grad_accum, max_steps=budget.steps,
        learning_rate=budget.lr, lr_scheduler_type=budget.scheduler, max_length=budget.max_length,
        seed=budget.seed, bf16=False, fp16=False, save_strategy="no", report_to="none", logging_steps=1,
        disable_tqdm=True, use_cpu=not torch.cuda.is_available(),
    )
    if budget.gradient_checkpointing is not None:
        common["gradient_checkpointing"] = budget.gradient_checkpointing
    if budget.beta is not None:
        common["beta"] = budget.beta
    if peer == "dpo":
        from trl import DPOConfig, DPOTrainer

        trainer = DPOTrainer(model=model, args=DPOConfig(**common), train_dataset=dataset,
                             processing_class=tokenizer)
    else:
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        trainer = CPOTrainer(model=model, args=CPOConfig(loss_type="simpo", cpo_alpha=1.0, **common),
                             train_dataset=dataset, processing_class=tokenizer)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = trainer.train()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    trainer.save_model(str(out))
    cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {"seconds": seconds, "cuda_peak_mb": cuda, "steps": result.global_step}


if __name__ == "__main__":  # one TRL run: peer, data, model folder, output folder, budget (JSON)
    peer_name, data_arg, model_arg, out_arg, budget_arg = sys.argv[1:6]
    figures = _train_trl(peer_name, Path(data_arg), Path(model_arg), Path(out_arg), Budget(**json.loads(budget_arg)))
    print(json.dumps(figures), file=sys.stderr)
