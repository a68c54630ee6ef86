"""The rrhf demo: iterative RRHF on a tiny model, with the improvement measured on held-out prompts.

    python -m examples.demo --out out/demo         # what `make demo` runs (about 5 minutes on 2 CPU cores)

Each round samples k responses per training prompt from the current policy, scores them with
`examples/rewards.py:vowels`, ranks them and trains the policy with the RRHF loss; the next round samples
from the new policy. At the end the initial and final policies answer held-out prompts, and the demo
prints their mean reward, the final policy's win rate over the initial one and its rank accuracy (how
often its length-normalised log-probability orders two held-out responses as the reward does), and
writes training curves and reward histograms as PNG files and `view.html`, the held-out answers before and
after side by side (`rrhf view`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from stages.contract.errors import RrhfError, exit_status, interrupted, raise_terminated
from stages.contract.inputs import load_records
from stages.contract.metrics import read_metrics
from stages.eval.config import EvalConfig
from stages.eval.run import run_eval
from stages.lm.tiny_models import build_tiny_models
from stages.plot.charts import reward_histograms, training_curves
from stages.rank.config import RankConfig
from stages.rank.run import run_rank
from stages.runtime.console import quiet_libraries, setup_logging
from stages.sample.config import SampleConfig
from stages.sample.run import run_sample
from stages.score.config import ScoreConfig
from stages.score.run import run_score
from stages.train.config import TrainConfig
from stages.train.run import run_train
from stages.view.config import ViewConfig
from stages.view.run import run_view

HERE = Path(__file__).resolve().parent
REWARD = f"{HERE / 'rewards.py'}:vowels"


def main(argv: list[str] | None = None) -> dict:
    """Run the demo; returns the figures it prints."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60, help="optimiser steps per round")
    parser.add_argument("--prompts", type=int, default=64, help="training prompts used (at most 64)")
    parser.add_argument("-k", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-3)
    args = parse_common(parser, argv)
    out = args.out
    prompts = out / "train-prompts.jsonl"
    lines = (HERE / "demo" / "train-prompts.jsonl").read_text().splitlines()[: args.prompts]
    prompts.write_text("".join(line + "\n" for line in lines))

    initial = build_tiny_models(out / "models", seed=args.seed).policy
    policy = initial
    for round_ in range(1, args.rounds + 1):
        sample = SampleConfig(model=str(policy), k=args.k, max_new_tokens=args.max_new_tokens,
                              seed=args.seed + round_, source=f"policy-{round_ - 1}")
        train = TrainConfig(model=str(policy), lr=args.lr, max_steps=args.steps, queries_per_batch=4,
                            logging_steps=max(1, args.steps // 10), seed=args.seed)
        policy = rrhf_round(prompts, out / f"round-{round_}", sample, REWARD, train)

    evaluation = EvalConfig(model=str(policy), baseline=str(initial),
                            sample={"k": args.k, "max_new_tokens": args.max_new_tokens, "seed": args.seed + 1000},
                            score={"scorer": "python", "fn": REWARD})
    report = run_eval(str(HERE / "demo" / "heldout-prompts.jsonl"), out / "eval", evaluation, force=True)
    accuracy = rank_accuracy(out / "eval" / "scored-baseline.jsonl", {"before": initial, "after": policy}, out / "eval")

    metrics = []
    for r in range(1, args.rounds + 1):  # rounds one after another on one step axis
        for row in read_metrics(out / f"round-{r}" / "policy"):
            metrics.append(row | {"step": row["step"] + (r - 1) * args.steps})
    training_curves(metrics, out / "training.png", title=f"RRHF, {args.rounds} rounds of {args.steps} steps")
    before = _scores(out / "eval" / "scored-baseline.jsonl")
    after = _scores(out / "eval" / "scored-model.jsonl")
    reward_histograms({"initial policy": before, "trained policy": after}, out / "rewards.png",
                      title="held-out reward (share of vowels)")
    figures = {
        "heldout_reward_before": report.baseline.mean_reward,
        "heldout_reward_after": report.model.mean_reward,
        "win_rate": report.win_rate,
        "rank_accuracy_before": accuracy["before"],
        "rank_accuracy_after": accuracy["after"],
    }
    (out / "summary.json").write_text(json.dumps(figures, indent=2) + "\n")
    write_view(out, args.rounds, "rrhf demo: held-out answers before and after training")
    _print_table(figures, out)
    return figures


def write_view(out: Path, rounds: int, title: str) -> Path:
    """OUT/view.html: the held-out answers of the initial and the trained policy side by side, with each
    round's training curves."""
    page = out / "view.html"
    policies = [str(out / f"round-{r}" / "policy") for r in range(1, rounds + 1)]
    run_view([str(out / "eval"), *policies], page, ViewConfig(title=title))
    return page


def run_as_command(main: Callable[[], object]) -> None:
    """Run a demo as `rrhf` runs a command: a failure the user can act on (an RrhfError, an OS error such as a
    full disk) ends it with one line on stderr and its exit status, not a traceback; so do Ctrl-C and SIGTERM,
    which end a running engine with the demo."""
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        main()
    except (RrhfError, OSError) as err:
        print(f"{Path(sys.argv[0]).name}: error: {err}", file=sys.stderr)
        raise SystemExit(exit_status(err)) from None
    except KeyboardInterrupt as err:  # between stages: what a stage finished is in its output already
        stopped = interrupted(err)
        print(f"{Path(sys.argv[0]).name}: {stopped}", file=sys.stderr)
        raise SystemExit(stopped.exit_code) from None


def parse_common(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Add the flags both demos share (--seed, -q), parse, set up logging and make the output folder."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(quiet=args.quiet)
    quiet_libraries()
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def rrhf_round(prompts: Path, folder: Path, sample: SampleConfig, reward: str, train: TrainConfig) -> Path:
    """One round of iterative RRHF in `folder`: sample from the policy, score with the python `reward`, rank,
    train; returns the new policy's folder."""
    run_sample(str(prompts), folder / "samples.jsonl", sample, force=True)
    run_score(str(folder / "samples.jsonl"), folder / "scored.jsonl", ScoreConfig(scorer="python", fn=reward),
              force=True)
    run_rank(str(folder / "scored.jsonl"), folder / "ranked.jsonl", RankConfig())
    run_train(str(folder / "ranked.jsonl"), folder / "policy", train, force=True)
    return folder / "policy"


def rank_accuracy(scored: Path, models: dict[str, Path], folder: Path) -> dict[str, float]:
    """For each model, how often its p orders two held-out responses of a prompt as the reward does."""
    out = {}
    originals = load_records(scored).records
    for label, model in models.items():
        target = folder / f"p-{label}.jsonl"
        run_score(str(scored), target, ScoreConfig(scorer="logprob", model=str(model)), force=True)
        correct = pairs = 0
        for original, record in zip(originals, load_records(target).records, strict=True):
            for a, b in itertools.combinations(range(len(record.responses)), 2):
                ra, rb = original.responses[a].score, original.responses[b].score
                if ra == rb:
                    continue
                pa, pb = record.responses[a].score, record.responses[b].score
                pairs += 1
                correct += (pa > pb) == (ra > rb)
        out[label] = correct / pairs if pairs else float("nan")
    return out


def _scores(path: Path) -> list[float]:
    return [r.score for record in load_records(path).records for r in record.responses if r.score is not None]


def _print_table(figures: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("", "initial policy", "trained policy", title="rrhf demo: held-out prompts", title_justify="left")
    table.add_row("mean reward", f"{figures['heldout_reward_before']:.4f}", f"{figures['heldout_reward_after']:.4f}")
    table.add_row("rank accuracy", f"{figures['rank_accuracy_before']:.3f}", f"{figures['rank_accuracy_after']:.3f}")
    table.add_row("win rate over the initial policy", "", f"{figures['win_rate']:.3f}")
    console = Console()
    console.print(table)
    console.print(f"plots: {out / 'training.png'}, {out / 'rewards.png'}; figures: {out / 'summary.json'}; "
                  f"answers: {out / 'view.html'}")


if __name__ == "__main__":
    run_as_command(main)
