"""Train-step benchmarks of the RRHF loss on a ~20M-parameter Llama with a 32k vocabulary (CPU or CUDA).

Rows, each a ratio against a baseline measured in the same run, each variant in a fresh process so
its peak memory is its own:
  1. lean head vs naive full-vocabulary log-softmax (k=8, prompt 256 + response 256 = 512 tokens):
     peak memory and step time, with the loss values compared.
  2. prompt-heavy (prompt 256, k=8 responses of 64): packed vs unpacked step time.
  3. prompt-light (prompt 32, k=4 responses of 128): packed vs unpacked step time.
A step is forward, loss and backward; the optimiser is left out as it is the same for every variant.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROWS = {
    "head": {"prompt": 256, "response": 256, "k": 8, "variants": ("naive", "lean")},
    "prompt-heavy": {"prompt": 256, "response": 64, "k": 8, "variants": ("unpacked", "packed")},
    "prompt-light": {"prompt": 32, "response": 128, "k": 4, "variants": ("unpacked", "packed")},
}


def _config():  # -> LlamaConfig
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=32000, hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=2048, tie_word_embeddings=False,
    )


def _model(device: str):
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(_config()).to(device).float()


def _peak_mb(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _query(row: str):  # -> Query
    import torch

    from stages.lm.queries import Query

    spec = ROWS[row]
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(3, 32000, (spec["prompt"],), generator=g).tolist()
    responses = [torch.randint(3, 32000, (spec["response"],), generator=g).tolist() for _ in range(spec["k"])]
    return Query(prompt=prompt, responses=responses, rewards=[float(i) for i in range(spec["k"])])


def run_variant(row: str, variant: str, repeats: int, device: str) -> dict[str, float]:
    """One variant in this process: best step time, peak memory added by the step, and the loss."""
    import torch

    from stages.lm.head import install_head
    from stages.lm.logprobs import response_logprobs
    from stages.lm.packing import collate
    from stages.train.loss import LossSettings, rrhf_loss

    query = _query(row)
    packed = variant == "packed"
    batch = {k: v.to(device) for k, v in collate([query], 0, packed=packed).items()}
    model = _model(device)
    head = None if variant == "naive" else install_head(model)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    before = _peak_mb(device)
    times, loss = [], None
    for _ in range(repeats + 1):  # the first step warms up
        model.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        logp = response_logprobs(model, batch, head)
        parts = rrhf_loss(logp, batch["lengths"], batch["rewards"], batch["response_query"], LossSettings())
        parts.loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        loss = parts.loss.item()
    return {"seconds": min(times[1:]), "peak_mb": _peak_mb(device) - before, "loss": loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--one", nargs=2, metavar=("ROW", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.one:
        print(json.dumps(run_variant(*args.one, args.repeats, device)))
        return
    root = Path(__file__).resolve().parents[1]
    print(f"bench train: ~20M-parameter Llama, 32k vocabulary, on {device} "
          f"({torch.get_num_threads()} threads), best of {args.repeats} steps")
    for row in args.rows.split(","):
        baseline, candidate = ROWS[row]["variants"]
        results = {}
        for variant in (baseline, candidate):
            out = subprocess.run(
                [sys.executable, __file__, "--one", row, variant, "--repeats", str(args.repeats)],
                capture_output=True, text=True, check=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
            )
            results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        b, c = results[baseline], results[candidate]
        print(f"  {row:13s} {baseline:>8s}: {b['seconds']:7.3f} s/step {b['peak_mb']:8.0f} MiB peak   "
              f"{candidate:>8s}: {c['seconds']:7.3f} s/step {c['peak_mb']:8.0f} MiB peak")
        print(f"  {'':13s} ratio {candidate}/{baseline}: time {c['seconds'] / b['seconds']:.2f}x, "
              f"peak memory {c['peak_mb'] / max(b['peak_mb'], 1e-9):.2f}x, "
              f"|loss difference| {abs(c['loss'] - b['loss']):.1e}")
        if candidate == "packed":
            from stages.lm.packing import compute_estimate, saves_enough

            unpacked, packed = compute_estimate([_query(row)], _config().hidden_size)
            chosen = "packed" if saves_enough(unpacked, packed) else "unpacked"
            print(f"  {'':13s} --pack-prompt auto picks {chosen} (estimated compute {packed / unpacked:.2f}x): "
                  f"time {results[chosen]['seconds'] / b['seconds']:.2f}x unpacked")


if __name__ == "__main__":
    main()
